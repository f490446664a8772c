"""The admin dashboard: latency, errors, system, agents, breakers and counters over a window."""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from agentplatform import charts
from monitoring.recorder import PLATFORM_COUNTERS_KEY
from monitoring.selectors import (
    agent_trends,
    latest_snapshot,
    operation_series,
    operations_summary,
    system_series,
    top_operations,
)
from monitoring.store import get_store

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
TOP_OPERATIONS = 5


def _series_name(agent: str, workflow: str, submitter: str) -> str:
    # The submitter is named when it is not the agent itself (a person who filed an agent's runs).
    name = f"{agent}/{workflow}"
    return name if submitter == agent else f"{name} (by {submitter or 'a deleted user'})"


def _breakers(now) -> dict:
    from agentplatform import breakers
    from agentplatform.models import BreakerTransition

    recent = list(BreakerTransition.objects.order_by("-at", "-id")[:20])
    names = set(getattr(settings, "CIRCUIT_BREAKERS", {})) - {"default"}
    names.update(t.breaker for t in recent)
    states = []
    for name in sorted(names):
        try:
            states.append((name, breakers.get_breaker(name).state))
        except Exception:  # shown as unknown rather than failing the page
            states.append((name, "unknown"))
    return {"available": True, "states": states, "transitions": recent}


def _platform_counters() -> list[tuple[str, str, int]]:
    rows = []
    for field, value in get_store().read(PLATFORM_COUNTERS_KEY).items():
        try:
            name, labels = json.loads(field)
        except ValueError:
            continue
        rows.append((name, ", ".join(f"{k}={v}" for k, v in labels), value))
    # Fallbacks first: they are what an operator looks for here.
    return sorted(rows, key=lambda row: ("fallback" not in row[0], row[0], row[1]))


def line_chart(series, *, title: str, unit: str = ""):
    """The dashboard's charts: 560 x 180, value axis from zero, title drawn above the plot."""
    return charts.line_chart(series, title=title, unit=unit, css_class="monitoring-chart")


def dashboard_context(*, window: str, now=None) -> dict:
    now = now or timezone.now()
    span = WINDOWS[window]
    since = now - span
    by_hour = window != "1h"
    top = top_operations(since=since, until=now, limit=TOP_OPERATIONS)
    summary = operations_summary(since=since, until=now, now=now)
    if not top:
        top = [item["operation"] for item in summary["operations"][:TOP_OPERATIONS]]
    series = operation_series(operations=top, since=since, until=now, by_hour=by_hour)
    latency_charts = [
        line_chart(
            [
                ("p50", [(p[0], p[1]) for p in points]),
                ("p95", [(p[0], p[2]) for p in points]),
                ("p99", [(p[0], p[3]) for p in points]),
            ],
            title=f"{operation}: latency (ms)",
            unit="ms",
        )
        for operation, points in series.items()
    ]
    error_chart = line_chart(
        [(operation, [(p[0], p[4] * 100) for p in points]) for operation, points in series.items()],
        title="Error rate (%)",
        unit="%",
    )
    system = system_series(since=since, by_hour=by_hour)
    system_chart = line_chart(
        [
            ("CPU %", [(row["period"], row["cpu"]) for row in system]),
            ("memory %", [(row["period"], row["memory"]) for row in system]),
        ],
        title="Host CPU and memory (%)",
        unit="%",
    )
    trends = agent_trends(since=since, by_hour=by_hour)
    agent_charts = []
    for field, title in (
        ("retries", "Retries per run"),
        ("no_progress", "No-progress steps per run"),
        ("critic", "Critic score"),
    ):
        agent_charts.append(
            line_chart(
                [
                    (_series_name(agent, workflow, submitter), [(r["period"], r[field]) for r in rows])
                    for (agent, workflow, submitter), rows in trends.items()
                ],
                title=title,
            )
        )
    agent_table = []
    for (agent, workflow, submitter), rows in trends.items():
        runs = sum(r["runs"] for r in rows)
        agent_table.append(
            {
                "agent": agent,
                "workflow": workflow,
                "submitter": submitter,
                "runs": runs,
                "retries": sum(r["retries"] * r["runs"] for r in rows) / runs,
                "no_progress": sum(r["no_progress"] * r["runs"] for r in rows) / runs,
                "failures": sum(r["failures"] for r in rows),
            }
        )
    return {
        "window": window,
        "windows": list(WINDOWS),
        "since": since,
        "now": now,
        "operations": summary["operations"][:20],
        "relative_error": summary["relative_error"],
        "latency_charts": latency_charts,
        "error_chart": error_chart,
        "system_chart": system_chart,
        "snapshot": latest_snapshot(),
        "agent_charts": agent_charts,
        "agent_table": agent_table,
        "breakers": _breakers(now),
        "counters": _platform_counters(),
    }


# Days of the cost and token charts (per UTC day, so a shorter window would draw a single point).
TRACE_DAYS = 7
TOP_TRACES = 10
# Seconds the per-day cost and token series and the per-model health table are reused: the page
# shows them "as of up to five minutes ago" rather than rescanning a week of spans on every load.
TRACE_PANEL_CACHE_SECONDS = 300


def traces_context(*, window: str, now=None) -> dict:
    """The "Traces and cost" panels: cost and tokens per day by model and by agent over the last
    ``TRACE_DAYS`` days; error rate and p95 span duration by model, and the costliest traces, over
    the dashboard's window."""
    from traces.selectors import cost_by_day, model_health, top_traces_by_cost

    now = now or timezone.now()
    first_day = (now - timedelta(days=TRACE_DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    since = now - WINDOWS[window]
    charts = []
    for by, label in (("model", "model"), ("agent", "agent")):
        # Seven days of spans are millions of rows on a busy installation (~0.7 s per model
        # breakdown at 10 M spans a month): computed once per TRACE_PANEL_CACHE_SECONDS.
        key = f"monitoring:dashboard:cost_by_day:{by}:{first_day:%Y%m%d}"
        data = cache.get(key)
        if data is None:
            data = cost_by_day(since=first_day, until=now, by=by)
            cache.set(key, data, TRACE_PANEL_CACHE_SECONDS)
        for field, title, unit in (
            ("cost", f"Cost per day by {label}", ""),
            ("tokens", f"Tokens per day by {label}", ""),
        ):
            series = [
                (name, [(day, values[day][field] if day in values else 0) for day in data["days"]])
                for name, values in data["series"].items()
            ]
            charts.append(line_chart(series, title=title, unit=unit))
    # A percentile over a week of spans (~0.6 s at 10 M spans a month): reused like the series.
    health_key = f"monitoring:dashboard:model_health:{window}"
    health = cache.get(health_key)
    if health is None:
        health = model_health(since=since, until=now)
        cache.set(health_key, health, TRACE_PANEL_CACHE_SECONDS)
    return {
        "trace_days": TRACE_DAYS,
        "trace_charts": charts,
        "model_health": health,
        "top_traces": top_traces_by_cost(since=since, until=now, limit=TOP_TRACES),
    }


def dashboard_view(request, *, admin_site):
    """Staff only (admin_view wraps it); reading it needs monitoring.view_metrics."""
    if not request.user.has_perm("monitoring.view_metrics"):
        raise PermissionDenied
    window = request.GET.get("window", "1h")
    if window not in WINDOWS:
        window = "1h"
    context = {
        **admin_site.each_context(request),
        "title": "Monitoring dashboard",
        **dashboard_context(window=window),
        "show_traces": request.user.has_perm("traces.view_trace"),
    }
    if context["show_traces"]:
        context.update(traces_context(window=window, now=context["now"]))
    return TemplateResponse(request, "monitoring/dashboard.html", context)
