"""The sections a report is built from, one per app, each a plain JSON-ready dict.

Every section aggregates in SQL over ``[start, end)`` and never loads raw rows into Python beyond
bounded top-N lists. Each carries ``"available": True`` (reports stored before every app was
installed may hold ``{"available": False, "note": ...}``; the templates still show those).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from django.db.models import Avg, Count, Q

from agentplatform.models import BreakerTransition
from audit.models import AuditEvent
from enrichment.health import provider_health
from enrichment.models import CollectedDocument, DataSource
from experiments.models import Experiment, Exposure, Result
from experiments.stats.selectors import experiment_stats
from experiments.stats.services import experiment_stats_refresh
from monitoring.recorder import PLATFORM_COUNTERS_KEY
from monitoring.selectors import operations_summary
from monitoring.store import get_store
from reports.models import JobOutcome, JobRun

logger = logging.getLogger(__name__)

# Rows kept in each "top" list of a section (actions, actors, operations, failures).
TOP_N = 25


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --- audit ----------------------------------------------------------------------------------


def _severity_label(value) -> str:
    """Severity stored as a number (10 debug ... 50 critical) is reported by its name."""
    choices = dict(AuditEvent._meta.get_field("severity").choices or ())
    return str(choices.get(value, value))


def section_audit(*, start: datetime, end: datetime) -> dict:
    """Audit events of the period: totals, success rate, by action, severity and actor."""
    events = AuditEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    totals = events.aggregate(events=Count("pk"), succeeded=Count("pk", filter=Q(success=True)))
    by_action = (
        events.values("action")
        .annotate(events=Count("pk"), failed=Count("pk", filter=Q(success=False)))
        .order_by("-events", "action")[:TOP_N]
    )
    by_severity = events.values("severity").annotate(events=Count("pk")).order_by("-events", "severity")
    by_actor = events.values("actor_label").annotate(events=Count("pk")).order_by("-events", "actor_label")[:TOP_N]
    return {
        "available": True,
        "events": totals["events"],
        "succeeded": totals["succeeded"],
        "success_rate": _rate(totals["succeeded"], totals["events"]),
        "by_action": [dict(row) for row in by_action],
        "by_severity": {_severity_label(row["severity"]): row["events"] for row in by_severity},
        "by_actor": [{"actor": row["actor_label"], "events": row["events"]} for row in by_actor],
    }


# --- experiments ----------------------------------------------------------------------------


def _experiment_decision(experiment) -> dict | None:
    """The stats app's decision for one experiment (an error instead of it if the analysis fails)."""
    try:
        experiment_stats_refresh(experiment=experiment)
        stats = experiment_stats(experiment=experiment)
    except Exception as exc:  # a statistics error must not lose the rest of the report
        logger.warning("daily report: no decision for %s: %s", experiment.key, exc)
        return {"error": exc.__class__.__name__}
    decision = stats.get("decision") if isinstance(stats, dict) else getattr(stats, "decision", None)
    if decision is None or isinstance(decision, dict | str):
        return decision
    if hasattr(decision, "as_dict"):
        return decision.as_dict()
    return {"summary": str(decision)}


def section_experiments(*, start: datetime, end: datetime) -> dict:
    """Experiments by status, and per running experiment its exposures, results and decision."""
    by_status = {
        row["status"]: row["experiments"]
        for row in Experiment.objects.values("status").annotate(experiments=Count("pk")).order_by("status")
    }
    running = list(Experiment.objects.filter(status="running").order_by("key")[:100])
    ids = [experiment.pk for experiment in running]
    in_period = Q(first_seen_at__gte=start, first_seen_at__lt=end)
    exposures = (
        Exposure.objects.filter(experiment_id__in=ids)
        .values("experiment_id", "variant__key")
        .annotate(total=Count("pk"), new=Count("pk", filter=in_period))
    )
    results = (
        Result.objects.filter(experiment_id__in=ids, occurred_at__gte=start, occurred_at__lt=end)
        .values("experiment_id", "variant__key")
        .annotate(
            results=Count("pk"),
            succeeded=Count("pk", filter=Q(success=True)),
            judged=Count("pk", filter=Q(success__isnull=False)),
            mean_quality=Avg("quality_score"),
        )
    )
    variants: dict[int, dict[str, dict]] = {pk: {} for pk in ids}
    empty = {"exposures_total": 0, "exposures_new": 0, "results": 0, "succeeded": 0, "judged": 0}
    for row in exposures:
        entry = variants[row["experiment_id"]].setdefault(row["variant__key"], dict(empty))
        entry.update(exposures_total=row["total"], exposures_new=row["new"])
    for row in results:
        entry = variants[row["experiment_id"]].setdefault(row["variant__key"], dict(empty))
        entry.update(results=row["results"], succeeded=row["succeeded"], judged=row["judged"])
        entry["mean_quality"] = round(row["mean_quality"], 4) if row["mean_quality"] is not None else None
    running_rows = []
    for experiment in running:
        per_variant = variants[experiment.pk]
        for entry in per_variant.values():
            entry["success_rate"] = _rate(entry.pop("succeeded"), entry.pop("judged"))
        running_rows.append(
            {
                "key": experiment.key,
                "name": experiment.name,
                "exposures_total": sum(v["exposures_total"] for v in per_variant.values()),
                "exposures_new": sum(v["exposures_new"] for v in per_variant.values()),
                "results": sum(v["results"] for v in per_variant.values()),
                "variants": dict(sorted(per_variant.items())),
                "decision": _experiment_decision(experiment),
            }
        )
    return {"available": True, "by_status": by_status, "running": running_rows}


# --- monitoring -----------------------------------------------------------------------------

# Operations listed in the daily report (busiest first).
TOP_OPERATIONS = 10


def _breaker_openings(*, start: datetime, end: datetime, prefix: str = "") -> dict[str, int]:
    openings = BreakerTransition.objects.filter(at__gte=start, at__lt=end, to_state="open")
    if prefix:
        openings = openings.filter(breaker__startswith=prefix)
    rows = openings.values("breaker").annotate(openings=Count("pk")).order_by("-openings", "breaker")
    return {row["breaker"]: row["openings"] for row in rows}


def _platform_counter_total(name: str) -> dict[str, int]:
    """A cumulative platform counter (e.g. ``ratelimit_fallback_total``) by label set, from the shared store."""
    totals: dict[str, int] = {}
    for field, value in get_store().read(PLATFORM_COUNTERS_KEY).items():
        try:
            counter, labels = json.loads(field)
        except ValueError:
            continue
        if counter == name:
            label = ",".join(f"{k}={v}" for k, v in labels) or "all"
            totals[label] = totals.get(label, 0) + int(value)
    return totals


def section_monitoring(*, start: datetime, end: datetime) -> dict:
    """Busiest operations (count, error rate, p95), breaker openings and rate-limit fallbacks."""
    operations = operations_summary(since=start, until=end)["operations"]
    total = sum(op["count"] for op in operations)
    errors = sum(op["errors"] for op in operations)
    fallbacks = _platform_counter_total("ratelimit_fallback_total")
    return {
        "available": True,
        "operations_count": total,
        "errors": errors,
        "error_rate": _rate(errors, total),
        "operations": [
            {
                "operation": op["operation"],
                "count": op["count"],
                "errors": op["errors"],
                "error_rate": op["error_rate"],
                "p95_ms": op["p95"],
            }
            for op in operations[:TOP_OPERATIONS]
        ],
        "breaker_openings": _breaker_openings(start=start, end=end),
        # Cumulative since the shared store began (counters are not time-bucketed): compare two
        # daily reports to see the day's increase.
        "rate_limit_fallbacks_total": fallbacks,
    }


# --- enrichment -----------------------------------------------------------------------------


def section_enrichment(*, start: datetime, end: datetime) -> dict:
    """Provider health (as of the report), breaker openings in the period and data sources."""
    section: dict = {"available": True}
    section["providers"] = {
        name: {
            key: value
            for key, value in provider.items()
            if key
            in (
                "kind",
                "configured",
                "breaker",
                "last_success",
                "last_failure",
                "last_error",
                "calls_last_hour",
                "error_rate_last_hour",
                "p95_ms_last_hour",
            )
        }
        for name, provider in provider_health().items()
    }
    section["breaker_openings"] = _breaker_openings(start=start, end=end)
    documents = {
        row["source_id"]: row["documents"]
        for row in CollectedDocument.objects.filter(fetched_at__gte=start, fetched_at__lt=end)
        .values("source_id")
        .annotate(documents=Count("pk"))
    }
    section["sources"] = [
        {
            "name": source.name,
            "active": source.active,
            "last_success_at": source.last_success_at.isoformat() if source.last_success_at else None,
            "consecutive_failures": source.consecutive_failures,
            "last_error": source.last_error,
            "documents_collected": documents.get(source.pk, 0),
        }
        for source in DataSource.objects.order_by("name")[:TOP_N]
    ]
    return section


# --- jobs -----------------------------------------------------------------------------------


def section_jobs(*, start: datetime, end: datetime) -> dict:
    """Job runs started in the period by outcome, and the failures with their errors."""
    runs = JobRun.objects.filter(started_at__gte=start, started_at__lt=end)
    by_outcome = {row["outcome"]: row["runs"] for row in runs.values("outcome").annotate(runs=Count("pk"))}
    failed = runs.filter(outcome=JobOutcome.FAILED)
    by_job = {
        row["job"]: row["failures"] for row in failed.values("job").annotate(failures=Count("pk")).order_by("job")
    }
    failures = [
        {
            "job": run.job,
            "period": run.period,
            "scope": run.scope,
            "started_at": run.started_at.isoformat(),
            "error": run.error_summary[:300],
        }
        for run in failed.order_by("-started_at")[:TOP_N]
    ]
    return {
        "available": True,
        "runs": sum(by_outcome.values()),
        "by_outcome": by_outcome,
        "failures_by_job": by_job,
        "failures": failures,
    }


DAILY_SECTIONS = {
    "audit": section_audit,
    "experiments": section_experiments,
    "monitoring": section_monitoring,
    "enrichment": section_enrichment,
    "jobs": section_jobs,
}


# --- creator analytics ----------------------------------------------------------------------


def section_creators(*, start: datetime, end: datetime, limit: int) -> dict:
    """Per creator (the ``user_id`` agents send): experiments and variants seen, results, quality.

    The most active ``limit`` creators by results in the period, then those only exposed.
    """
    results = (
        Result.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .values("user_id")
        .annotate(
            results=Count("pk"),
            succeeded=Count("pk", filter=Q(success=True)),
            judged=Count("pk", filter=Q(success__isnull=False)),
            mean_quality=Avg("quality_score"),
            mean_feedback=Avg("user_feedback"),
        )
        .order_by("-results", "user_id")
    )
    total_creators = results.count()
    creators: dict[str, dict] = {}
    for row in results[:limit]:
        creators[row["user_id"]] = {
            "results": row["results"],
            "success_rate": _rate(row["succeeded"], row["judged"]),
            "mean_quality": round(row["mean_quality"], 4) if row["mean_quality"] is not None else None,
            "mean_feedback": round(row["mean_feedback"], 4) if row["mean_feedback"] is not None else None,
            "experiments": [],
            "variants": [],
        }
    # Exposed in the period or reporting results in it: both count as "seen".
    seen = Exposure.objects.filter(
        Q(first_seen_at__gte=start, first_seen_at__lt=end) | Q(user_id__in=list(creators))
    ).filter(first_seen_at__lt=end)
    exposed_only = seen.exclude(user_id__in=list(creators)).values("user_id").distinct().order_by("user_id")
    room = max(0, limit - len(creators))
    for user_id in exposed_only.values_list("user_id", flat=True)[:room]:
        creators[user_id] = {
            "results": 0,
            "success_rate": None,
            "mean_quality": None,
            "mean_feedback": None,
            "experiments": [],
            "variants": [],
        }
    pairs = (
        seen.filter(user_id__in=list(creators))
        .values_list("user_id", "experiment__key", "variant__key")
        .order_by("user_id", "experiment__key", "variant__key")
    )
    for user_id, experiment_key, variant_key in pairs:
        entry = creators[user_id]
        if experiment_key not in entry["experiments"]:
            entry["experiments"].append(experiment_key)
        entry["variants"].append(f"{experiment_key}:{variant_key}")
    all_seen = seen.values("user_id").distinct().count()
    return {
        "available": True,
        "creators_with_results": total_creators,
        "creators_seen": max(all_seen, total_creators),
        "truncated": len(creators) < max(all_seen, total_creators),
        "creators": creators,
    }


ENRICHMENT_CALL_ACTION = "enrichment.context_fetched"


def section_agents(*, start: datetime, end: datetime) -> dict:
    """Per agent: audit events by action and success rate, and enrichment calls."""
    events = AuditEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end, actor__role="agent")
    rows = (
        events.values("actor_label", "action")
        .annotate(events=Count("pk"), succeeded=Count("pk", filter=Q(success=True)))
        .order_by("actor_label", "action")
    )
    agents: dict[str, dict] = {}
    for row in rows:
        agent = agents.setdefault(row["actor_label"], {"events": 0, "succeeded": 0, "by_action": {}})
        agent["events"] += row["events"]
        agent["succeeded"] += row["succeeded"]
        agent["by_action"][row["action"]] = row["events"]
    for agent in agents.values():
        agent["success_rate"] = _rate(agent.pop("succeeded"), agent["events"])
        # Every context call is audited once as enrichment.context_fetched by the calling agent.
        agent["enrichment_calls"] = agent["by_action"].get(ENRICHMENT_CALL_ACTION, 0)
    return {"available": True, "agents": agents}
