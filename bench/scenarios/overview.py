"""The admin's front page (``/admin/``, ``agentplatform.overview``) on a busy day's data.

Seeds (x ``bench.scale``), with ``generate_series`` in PostgreSQL: 300,000 traces in the last 24 h
from 50 agents (the fleet part's percentile reads them all), 7 days of job runs for 15 jobs every
minute (151,200 rows), 20 running experiments with their rollup rows, 200 prompt label moves in the
week. Then renders the page in-process through Django's test client as a superuser, median of 15:

- **cold**: the cache cleared before each render, so the fleet part is computed (target ≤ 300 ms);
- **warm**: the fleet part read from the cache (it is kept a minute);

each divided by the same client rendering ``/admin/password_change/`` (session, middleware, admin
base template: the least any admin page costs). The seed is replaced on every run.
"""

from __future__ import annotations

import statistics
import time

TRACES = 300_000
AGENTS = 50
JOBS = 15
JOB_DAYS = 7
EXPERIMENTS = 20
LABEL_MOVES = 200
PREFIX = "bench-overview"


def _timed(fn, repeat: int, *, before=None) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeat`` runs (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _seed(scale: float) -> dict:
    from datetime import timedelta
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from experiments.models import Experiment, ExperimentStatus, Variant
    from experiments.stats.models import CALLS, ExperimentStatsState, ExperimentVariantMetric
    from prompts.models import Prompt, PromptLabelMove
    from reports.models import JobRun
    from traces import partitions
    from traces.models import Trace

    users = get_user_model()
    now = timezone.now()
    traces = max(1000, int(TRACES * scale))
    job_minutes = max(60, int(JOB_DAYS * 24 * 60 * scale))
    agents = []
    for n in range(AGENTS):
        agent, _ = users.objects.get_or_create(username=f"{PREFIX}-agent-{n}", defaults={"role": "agent"})
        agents.append(agent.pk)
    partitions.ensure_days({(now - timedelta(days=d)).date() for d in range(2)})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Trace._meta.db_table} WHERE agent_id = ANY(%s)", [agents])  # noqa: S608
        cursor.execute(
            f"INSERT INTO {Trace._meta.db_table} (trace_id, day, agent_id, user_id, root_span_name, start_time,"  # noqa: S608
            " end_time, duration_ms, status, span_count, error_count, llm_calls, unpriced_spans, models_used,"
            " experiment_id, variant_id, updated_at, cost, input_tokens, output_tokens)"
            " SELECT lpad(to_hex(g), 32, '0'), (t.start AT TIME ZONE 'UTC')::date, (%s::bigint[])[1 + g %% %s],"
            " 'u' || (g %% 5000), 'invoke_agent', t.start, t.start + make_interval(secs => t.ms / 1000.0), t.ms,"
            " CASE WHEN g %% 37 = 0 THEN 'error' ELSE 'ok' END, 3, (g %% 37 = 0)::int, 1, 0, '[]'::jsonb,"
            " NULL, NULL, now(), 0.0125, 400, 120"
            " FROM generate_series(1::bigint, %s) AS g,"
            " LATERAL (SELECT %s::timestamptz - make_interval(secs => (g * 86000.0 / %s)) AS start,"
            " 200 + (g * 7919 %% 4000)::float AS ms) AS t",
            [agents, AGENTS, traces, now, traces],
        )
        JobRun.objects.filter(job__startswith=PREFIX).delete()
        cursor.execute(
            f"INSERT INTO {JobRun._meta.db_table} (job, period, period_start, period_end, scope, trigger, outcome,"  # noqa: S608
            " started_at, finished_at, attempts, rows_affected, error_summary, details, request_id, task_id)"
            " SELECT %s || '-' || j, '', NULL, NULL, '', 'schedule',"
            " CASE WHEN (m + j) %% 97 = 0 THEN 'failed' ELSE 'success' END,"
            " %s::timestamptz - make_interval(mins => m), %s::timestamptz - make_interval(mins => m), 1, 0, '',"
            " '{}'::jsonb, '', ''"
            " FROM generate_series(1, %s) AS j, generate_series(1, %s) AS m",
            [PREFIX, now, now, JOBS, job_minutes],
        )
        Experiment.objects.filter(key__startswith=PREFIX).delete()
        for n in range(EXPERIMENTS):
            experiment = Experiment.objects.create(
                key=f"{PREFIX}-{n}",
                name=f"Bench overview {n}",
                target_prompt_type=f"{PREFIX}-type-{n}",
                primary_metric="success_rate",
                user_percentage=Decimal("5"),
                status=ExperimentStatus.RUNNING,
                started_at=now - timedelta(days=n),
            )
            ExperimentStatsState.objects.create(experiment=experiment, rolled_through=now)
            for position, key in enumerate(("control", "warm")):
                variant = Variant.objects.create(
                    experiment=experiment, key=key, is_control=position == 0, position=position
                )
                ExperimentVariantMetric.objects.create(
                    experiment=experiment, variant=variant, metric=CALLS, users=1000 + n, total=5000, sum_sq=30000
                )
        prompt, _ = Prompt.objects.get_or_create(key=f"{PREFIX}-prompt")
        PromptLabelMove.objects.filter(prompt=prompt).delete()
        PromptLabelMove.objects.bulk_create(
            PromptLabelMove(prompt=prompt, label="production", from_version=1, to_version=2) for _ in range(LABEL_MOVES)
        )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Trace._meta.db_table}")
        cursor.execute(f"ANALYZE {JobRun._meta.db_table}")
    return {"traces": traces, "job_runs": JOBS * job_minutes}


def run(bench) -> None:
    bench.setup_django()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    seeded = _seed(bench.scale)
    admin, _ = get_user_model().objects.get_or_create(
        username=f"{PREFIX}-admin", defaults={"is_staff": True, "is_superuser": True, "role": "admin"}
    )
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(admin)

    def overview():
        response = client.get("/admin/", secure=True)
        assert response.status_code == 200, response.status_code

    def baseline():
        response = client.get("/admin/password_change/", secure=True)
        assert response.status_code == 200, response.status_code

    base_ms = _timed(baseline, 15)
    cold_ms = _timed(overview, 15, before=cache.clear)
    warm_ms = _timed(overview, 15)
    note = f"{seeded['traces']:,} traces in 24 h, {seeded['job_runs']:,} job runs in 7 days; in-process, median of 15"
    bench.record(
        "admin overview render, fleet computed (ms)",
        cold_ms,
        "ms",
        baseline=base_ms,
        baseline_name="GET /admin/password_change/",
        target="≤ 300 ms",
        note=note,
    )
    bench.record(
        "admin overview render, fleet cached (ms)",
        warm_ms,
        "ms",
        baseline=base_ms,
        baseline_name="GET /admin/password_change/",
        note=note,
    )
