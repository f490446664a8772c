"""Jobs and reports: what a run's bookkeeping costs, how long reports take, the reports API.

1. Job overhead: ``job_run`` of a no-op job (JobRun insert + update, lock add/get/delete in Redis,
   idempotency lookup), forced so every run does the full path, median of 200, against calling the
   no-op directly.
2. Daily report: a day with 200,000 audit events (50 agents, 20 actions) and an experiment with
   20,000 exposed users and 200,000 results (x ``bench.scale``), seeded once in-process;
   ``daily_report`` timed in-process, median of 3. Its budget is the job's 540 s soft limit.
3. Creator analytics over the week holding that day (20,000 creators), median of 3.
4. ``GET /api/v1/reports/?kind=daily`` as an analyst (JWT), against the no-op baseline.
"""

from __future__ import annotations

import json
import secrets
import statistics
import time
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta

DAY = date(2020, 3, 2)  # a Monday, far from any live data
START = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
EXPERIMENT_KEY = "bench-reports"


def _median_seconds(fn, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _job_overhead(bench) -> None:
    from django.utils import timezone

    from agentplatform.scheduling import periods
    from agentplatform.scheduling.registry import JOBS, JobSpec
    from agentplatform.scheduling.runner import JobRequest, job_run

    # A service that does nothing measurable, importable by dotted path, taking no arguments.
    JOBS["bench_noop"] = JobSpec(
        name="bench_noop", service="django.utils.timezone.now", description="", period=periods.MINUTE
    )
    request = JobRequest(job="bench_noop", force=True)
    warm_up = job_run(request=request)
    assert warm_up.outcome == "success", warm_up.error_summary
    per_run = _median_seconds(lambda: job_run(request=request), 200)
    direct = _median_seconds(timezone.now, 200)
    bench.record(
        "job_run bookkeeping per run (no-op job)",
        per_run * 1000,
        "ms",
        note=f"JobRun insert+update, Redis lock, idempotency lookup; direct call {direct * 1e6:.2f} us",
    )


def _seed(bench, *, events: int, users: int, results: int) -> None:
    from audit.models import AuditEvent
    from experiments.models import Experiment, Exposure, Result, Variant

    if AuditEvent.objects.filter(occurred_at__gte=START, occurred_at__lt=START + timedelta(days=1)).count() < events:
        batch = []
        for i in range(events):
            batch.append(
                AuditEvent(
                    event_id=uuid.uuid4(),
                    occurred_at=START + timedelta(seconds=(i * 86399) // events),
                    actor_label=f"bench-agent-{i % 50}",
                    action=f"bench.action_{i % 20}",
                    severity=(20, 20, 20, 30, 40)[i % 5],
                    success=i % 17 != 0,
                )
            )
            if len(batch) == 5000:
                AuditEvent.objects.bulk_create(batch)
                batch = []
        AuditEvent.objects.bulk_create(batch)
    experiment, created = Experiment.objects.get_or_create(
        key=EXPERIMENT_KEY,
        defaults={
            "name": "bench",
            "target_prompt_type": "bench",
            "primary_metric": "success_rate",
            "user_percentage": 1,
        },
    )
    Experiment.objects.filter(pk=experiment.pk).update(status="running")
    Variant.objects.filter(experiment=experiment, key="control").update(is_control=True)
    if not created and Result.objects.filter(experiment=experiment).count() >= results:
        return
    Result.objects.filter(experiment=experiment).delete()
    Exposure.objects.filter(experiment=experiment).delete()
    variants = [
        Variant.objects.get_or_create(
            experiment=experiment, key=key, defaults={"content": key, "position": i, "is_control": i == 0}
        )[0]
        for i, key in enumerate(("control", "treatment"))
    ]
    Exposure.objects.bulk_create(
        [
            Exposure(
                experiment=experiment,
                variant=variants[u % 2],
                user_id=f"creator-{u}",
                first_seen_at=START + timedelta(seconds=u % 80000),
            )
            for u in range(users)
        ],
        batch_size=5000,
    )
    batch = []
    for i in range(results):
        user = i % users
        batch.append(
            Result(
                event_id=f"bench-{i}",
                experiment=experiment,
                variant=variants[user % 2],
                user_id=f"creator-{user}",
                occurred_at=START + timedelta(seconds=(i * 86399) // results),
                success=i % 3 != 0,
                quality_score=(i % 10) / 10,
                user_feedback=(i % 3) - 1,
            )
        )
        if len(batch) == 5000:
            Result.objects.bulk_create(batch)
            batch = []
    Result.objects.bulk_create(batch)


def _reports(bench) -> None:
    from reports.services import creator_analytics, daily_report

    events, users, results = (max(1000, round(n * bench.scale)) for n in (200_000, 20_000, 200_000))
    _seed(bench, events=events, users=users, results=results)
    seconds = _median_seconds(lambda: daily_report(day=DAY), 3)
    bench.record(
        "daily report build",
        seconds,
        "s",
        target="inside the 540 s soft limit",
        note=f"{events} audit events, {users} exposed users, {results} results in the day; median of 3",
    )
    seconds = _median_seconds(lambda: creator_analytics(start=START, end=START + timedelta(days=7)), 3)
    bench.record(
        "creator analytics build (one week)",
        seconds,
        "s",
        target="inside the 540 s soft limit",
        note=f"{users} creators (report keeps the top REPORTS_MAX_CREATORS), {results} results; median of 3",
    )


def _api(bench) -> None:
    username, password = f"bench-analyst-{int(time.time())}", secrets.token_urlsafe(16)
    bench.manage("create_user", username, "--role", "analyst", "--password-stdin", input=password + "\n")
    request = urllib.request.Request(
        bench.base_url + "/api/v1/auth/token",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
        access = json.loads(response.read())["access"]
    headers = {"Authorization": f"Bearer {access}"}
    me = bench.load("/api/v1/auth/me", headers=headers)
    result = bench.load("/api/v1/reports/?kind=daily", headers=headers)
    bench.record(
        "GET /reports/?kind=daily req/s",
        result.requests_per_s,
        "req/s",
        baseline=me.requests_per_s,
        baseline_name="GET /auth/me with the same token",
        note=f"p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, non-2xx {result.non_2xx}",
    )


def run(bench) -> None:
    bench.setup_django()
    _job_overhead(bench)
    _reports(bench)
    _api(bench)
