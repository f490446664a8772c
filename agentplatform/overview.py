"""The admin's front page: what staff look at first in the day, each part linking to its page.

``overview_context`` reads a fixed number of queries whatever the data size: every part is one or
two aggregate or sliced queries (``OVERVIEW_LIMIT`` rows at most), none per row. Parts the user may
not view are left out. Nothing here computes statistics: an experiment's users per variant come
from its stats rollup (``ExperimentVariantMetric``, the ``_calls`` pseudo-metric), as of the rollup's
watermark; the decision, SRM check and intervals are on its statistics page, one click away.

The fleet part (24 h of traces: runs, failure rate, p95 duration, cost, per agent) is the one heavy
read: it is kept ``FLEET_CACHE_SECONDS`` in the cache, like the monitoring dashboard's trace panels.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

# Rows shown per part at most (a link leads to the full list).
OVERVIEW_LIMIT = 20
LABEL_MOVE_DAYS = 7
JOB_HOURS = 24
JOB_LAST_RUN_DAYS = 8  # a weekly job's last run, with a day to spare
FLEET_HOURS = 24
FLEET_CACHE_SECONDS = 60
# Trace durations read for the p95 on databases without percentile_cont (SQLite, the embedded mode).
FLEET_SAMPLE_CAP = 100_000
# Sort memory for the fleet's percentile (PostgreSQL): ~110 bytes per trace sorted, 300,000 traces fit.
FLEET_WORK_MEM = "64MB"


def _url(name: str, *args, query: str = "") -> str:
    url = reverse(name, args=args)
    return f"{url}?{query}" if query else url


def running_experiments(*, now, limit: int = OVERVIEW_LIMIT) -> dict:
    """Running and paused experiments, newest start first: days running and users per variant (3 queries)."""
    from experiments.models import Experiment, ExperimentStatus, Variant
    from experiments.stats.models import CALLS, ExperimentVariantMetric

    live = Experiment.objects.filter(status__in=[ExperimentStatus.RUNNING, ExperimentStatus.PAUSED])
    rows = list(live.select_related("stats_state").order_by("-started_at", "-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [experiment.pk for experiment in rows]
    variants: dict[int, list] = defaultdict(list)
    users: dict[int, int] = {}
    if ids:
        for variant in Variant.objects.filter(experiment_id__in=ids).order_by("experiment_id", "position", "id"):
            variants[variant.experiment_id].append(variant)
        users = dict(
            ExperimentVariantMetric.objects.filter(experiment_id__in=ids, metric=CALLS).values_list(
                "variant_id", "users"
            )
        )
    items = []
    for experiment in rows:
        state = getattr(experiment, "stats_state", None)
        started = experiment.started_at
        items.append(
            {
                "experiment": experiment,
                "days_running": (now - started).days if started else None,
                "variants": [
                    {"key": variant.key, "is_control": variant.is_control, "users": users.get(variant.pk, 0)}
                    for variant in variants[experiment.pk]
                ],
                "rolled_through": state.rolled_through if state else None,
                "stats_url": _url("admin:experiments_experiment_stats", experiment.pk),
                "url": _url("admin:experiments_experiment_change", experiment.pk),
            }
        )
    return {"items": items, "more": more, "list_url": _url("admin:experiments_experiment_changelist")}


def label_moves(*, now, limit: int = OVERVIEW_LIMIT) -> dict:
    """Prompt labels moved in the last ``LABEL_MOVE_DAYS`` days, newest first (1 query)."""
    from prompts.models import PromptLabelMove

    since = now - timedelta(days=LABEL_MOVE_DAYS)
    rows = list(
        PromptLabelMove.objects.filter(moved_at__gte=since)
        .select_related("prompt")
        .order_by("-moved_at", "-id")[: limit + 1]
    )
    return {
        "items": [
            {"move": move, "prompt_url": _url("admin:prompts_prompt_change", move.prompt_id)} for move in rows[:limit]
        ],
        "more": len(rows) > limit,
        "days": LABEL_MOVE_DAYS,
        "list_url": _url("admin:prompts_promptlabelmove_changelist"),
    }


def job_health(*, now) -> dict:
    """Per registered job (and any job that ran): its last run and outcome, runs and failures in the
    last ``JOB_HOURS`` hours; failing jobs first (3 queries).

    Counting reads the last day of runs only (a minute job leaves 1,440 a day); a job without a run
    that day (a daily or weekly job) has its last run looked up over ``JOB_LAST_RUN_DAYS`` days by
    job name, which the job index answers without reading the frequent jobs' runs."""
    from agentplatform.scheduling.registry import JOBS
    from reports.models import JobOutcome, JobRun

    since = now - timedelta(hours=JOB_HOURS)
    stats = {
        row["job"]: row
        for row in JobRun.objects.filter(started_at__gte=since)
        .values("job")
        .annotate(last=Max("started_at"), runs=Count("id"), failures=Count("id", filter=Q(outcome=JobOutcome.FAILED)))
        .order_by()
    }
    quiet = sorted(set(JOBS) - set(stats))
    latest_of = {job: row["last"] for job, row in stats.items()}
    if quiet:
        older = (
            JobRun.objects.filter(job__in=quiet, started_at__gte=now - timedelta(days=JOB_LAST_RUN_DAYS))
            .values("job")
            .annotate(last=Max("started_at"))
            .order_by()
        )
        latest_of.update({row["job"]: row["last"] for row in older})
    last_runs: dict[str, object] = {}
    if latest_of:
        latest = Q()
        for job, started in latest_of.items():
            latest |= Q(job=job, started_at=started)
        for run in JobRun.objects.filter(latest).order_by("job", "-id"):
            last_runs.setdefault(run.job, run)
    names = sorted(set(JOBS) | set(stats))
    changelist = _url("admin:reports_jobrun_changelist")
    items = []
    for name in names:
        row = stats.get(name, {})
        run = last_runs.get(name)
        items.append(
            {
                "job": name,
                "last_run": run,
                "runs": row.get("runs", 0),
                "failures": row.get("failures", 0),
                "url": f"{changelist}?{urlencode({'job': name})}",
                "run_url": _url("admin:reports_jobrun_change", run.pk) if run else "",
            }
        )
    # Failing jobs first, then the ones with no run, then the rest by name.
    items.sort(key=lambda item: (-item["failures"], item["last_run"] is not None, item["job"]))
    return {"items": items, "hours": JOB_HOURS, "last_run_days": JOB_LAST_RUN_DAYS, "list_url": changelist}


def _fleet_rows(*, since, until) -> list[tuple]:
    """(agent id, runs, failed runs, p95 duration ms, cost) per agent over [since, until)."""
    from traces.models import SpanStatus, Trace

    if connection.vendor == "postgresql":
        table = Trace._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            # The percentile sorts the day's durations per agent. With the default 4 MB of sort
            # memory PostgreSQL reads the rows through the (agent, start) index to avoid a sort that
            # spills to disk: 360 ms for 300,000 traces where a sequential scan and an in-memory sort
            # take 210 ms (bench/scenarios/overview.py). The setting ends with this transaction.
            cursor.execute(f"SET LOCAL work_mem = '{FLEET_WORK_MEM}'")
            cursor.execute(
                "SELECT agent_id, count(*), count(*) FILTER (WHERE status = %s), "  # noqa: S608
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), sum(cost) "
                f"FROM {table} WHERE start_time >= %s AND start_time < %s AND day >= %s "
                "GROUP BY agent_id ORDER BY 2 DESC, 1",
                [SpanStatus.ERROR, since, until, since.date()],
            )
            return [tuple(row) for row in cursor.fetchall()]
    import numpy

    durations: dict[int, list[float]] = defaultdict(list)
    failed: dict[int, int] = defaultdict(int)
    cost: dict[int, float] = defaultdict(float)
    traces = Trace.objects.filter(start_time__gte=since, start_time__lt=until).order_by()
    for agent_id, status, duration, trace_cost in traces.values_list("agent_id", "status", "duration_ms", "cost")[
        :FLEET_SAMPLE_CAP
    ]:
        durations[agent_id].append(duration)
        failed[agent_id] += status == SpanStatus.ERROR
        cost[agent_id] += float(trace_cost or 0)
    rows = [
        (agent, len(values), failed[agent], float(numpy.percentile(values, 95)), cost[agent])
        for agent, values in durations.items()
    ]
    rows.sort(key=lambda row: (-row[1], row[0]))
    return rows


def duration_display(ms) -> str:
    """A duration by its magnitude: ``850 ms``, ``1.25 s``, ``2.5 min``; ``-`` when unknown."""
    if ms is None:
        return "-"
    ms = float(ms)
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.3g} s"
    return f"{ms / 60_000:.3g} min"


def fleet_health(*, now) -> dict:
    """The last ``FLEET_HOURS`` hours of traces per agent and in all: runs, failure rate, p95, cost.

    Cached ``FLEET_CACHE_SECONDS`` (a percentile over a day of traces); 2 queries when computed."""
    key = f"overview:fleet:{now:%Y%m%d%H%M}"
    data = cache.get(key)
    if data is None:
        since = now - timedelta(hours=FLEET_HOURS)
        rows = _fleet_rows(since=since, until=now)
        names = (
            dict(
                get_user_model()
                .objects.filter(pk__in=[row[0] for row in rows[:OVERVIEW_LIMIT]])
                .values_list("pk", "username")
            )
            if rows
            else {}
        )
        agents = [
            {
                "agent_id": agent,
                "agent": names.get(agent, f"agent #{agent}"),
                "runs": runs,
                "failures": failures,
                "failure_rate": failures / runs if runs else 0.0,
                "failure_pct": 100 * failures / runs if runs else 0.0,
                "p95_ms": float(p95) if p95 is not None else None,
                "p95_display": duration_display(p95),
                "cost": float(cost or 0),
            }
            for agent, runs, failures, p95, cost in rows[:OVERVIEW_LIMIT]
        ]
        runs = sum(row[1] for row in rows)
        failures = sum(row[2] for row in rows)
        data = {
            "agents": agents,
            "more": len(rows) > OVERVIEW_LIMIT,
            "runs": runs,
            "failures": failures,
            "failure_rate": failures / runs if runs else 0.0,
            "failure_pct": 100 * failures / runs if runs else 0.0,
            "cost": sum(float(row[4] or 0) for row in rows),
            "as_of": now,
        }
        cache.set(key, data, FLEET_CACHE_SECONDS)
    return {**data, "hours": FLEET_HOURS, "list_url": _url("admin:traces_trace_changelist")}


def open_breakers() -> dict:
    """Circuit breakers not closed (their state lives in Redis: no database query)."""
    from agentplatform.breakers import STATE_CLOSED, breakers_info

    changelist = _url("admin:agentplatform_breakertransition_changelist")
    items = [
        {"name": name, **info, "url": f"{changelist}?{urlencode({'breaker': name})}"}
        for name, info in breakers_info().items()
        if info["state"] != STATE_CLOSED
    ]
    return {"items": items, "list_url": changelist}


def overview_context(request, *, site) -> dict:
    """Every part of the overview the user may see (``show_*`` says which)."""
    user = request.user
    now = timezone.now()
    context: dict = {"now": now}
    parts = [
        ("experiments", "experiments.view_experiment", lambda: running_experiments(now=now)),
        ("label_moves", "prompts.view_promptlabelmove", lambda: label_moves(now=now)),
        ("jobs", "reports.view_jobrun", lambda: job_health(now=now)),
        ("fleet", "traces.view_trace", lambda: fleet_health(now=now)),
        ("breakers", "agentplatform.view_breakertransition", open_breakers),
    ]
    for name, permission, read in parts:
        shown = user.has_perm(permission)
        context[f"show_{name}"] = shown
        if shown:
            context[name] = read()
    context["show_dashboard"] = user.has_perm("monitoring.view_metrics")
    if context["show_dashboard"]:
        context["dashboard_url"] = _url("admin:monitoring_dashboard")
    return context
