"""Reads of the monitoring app: summaries from summed histograms, dashboard series."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from monitoring.models import AgentRun, OperationDay, OperationHour, OperationMinute, SystemSnapshot
from monitoring.sketch import RELATIVE_ERROR, quantiles
from monitoring.store import get_store
from monitoring.timeutils import ceil_day, ceil_hour, epoch, floor_day, floor_hour

QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class Histogram:
    count: int = 0
    errors: int = 0
    duration_sum_ms: float = 0.0
    buckets: dict[int, int] | None = None

    def add_buckets(self, items) -> None:
        if self.buckets is None:
            self.buckets = {}
        for index, count in items:
            index = int(index)
            self.buckets[index] = self.buckets.get(index, 0) + int(count)


@dataclass(frozen=True)
class Window:
    """How a [since, until) window is read: whole days from day rows, whole hours at the edges from
    hour rows, and the remaining edge minutes from minute rows (so a week is ~6 day rows, at most 46
    hour rows and 118 minute rows, whatever the traffic).

    Minutes older than the minute retention no longer exist, so an edge that old is widened to its
    whole hour (the summary reports the window it actually covered).
    """

    since: datetime
    until: datetime
    days: tuple[tuple[datetime, datetime], ...]
    hours: tuple[tuple[datetime, datetime], ...]
    minutes: tuple[tuple[datetime, datetime], ...]


def _split(since: datetime, until: datetime, floor, ceil) -> tuple[tuple | None, list[tuple]]:
    """The whole units inside [since, until) and the left/right remainders."""
    first, last = ceil(since), floor(until)
    if first >= last:
        return None, [(since, until)]
    return (first, last), [(a, b) for a, b in ((since, first), (last, until)) if a < b]


def window_plan(*, since: datetime, until: datetime, now: datetime) -> Window:
    horizon = floor_hour(now - timedelta(days=settings.MONITORING_MINUTE_RETENTION_DAYS))
    if since < horizon:
        since = floor_hour(since)
    if until < horizon:
        until = ceil_hour(until)
    days, remainders = _split(since, until, floor_day, ceil_day)
    hours, minutes = [], []
    for start, end in remainders:
        whole, rest = _split(start, end, floor_hour, ceil_hour)
        if whole:
            hours.append(whole)
        minutes.extend(rest)
    return Window(since, until, (days,) if days else (), tuple(hours), tuple(minutes))


def _ranges(field: str, ranges) -> Q:
    condition = Q()
    for start, end in ranges:
        condition |= Q(**{f"{field}__gte": start, f"{field}__lt": end})
    return condition


def _row_querysets(plan: Window, operation: str | None):
    filters = {} if operation is None else {"operation": operation}
    querysets = []
    if plan.days:
        querysets.append(OperationDay.objects.filter(_ranges("day", plan.days), **filters))
        # A day without its day row (rolled before day rows existed, or written by hand) is read
        # from its hours instead; the anti-join is an index probe per hour, and finds none normally.
        day_row = OperationDay.objects.filter(operation=OuterRef("operation"), day=OuterRef("hour_day"))
        querysets.append(
            OperationHour.objects.filter(_ranges("hour", plan.days), **filters)
            .annotate(hour_day=TruncDay("hour"))
            .exclude(Exists(day_row))
        )
    if plan.hours:
        querysets.append(OperationHour.objects.filter(_ranges("hour", plan.hours), **filters))
    if plan.minutes:
        querysets.append(OperationMinute.objects.filter(_ranges("minute", plan.minutes), **filters))
    return querysets


def _json_each_sql() -> str:
    if connection.vendor == "postgresql":
        return "jsonb_each_text(t.buckets)"
    return "json_each(t.buckets)"


def histograms_in_window(*, since: datetime, until: datetime, operation: str | None = None, now=None):
    """{operation: Histogram} summed over rolled rows (in SQL) and the open minutes of the store."""
    now = now or timezone.now()
    plan = window_plan(since=since, until=until, now=now)
    result: dict[str, Histogram] = {}
    querysets = _row_querysets(plan, operation)
    if querysets:
        parts, params = [], []
        for queryset in querysets:
            sql, query_params = queryset.values(
                "operation", "count", "errors", "duration_sum_ms", "buckets"
            ).query.sql_with_params()
            parts.append(f"SELECT * FROM ({sql}) p{len(parts)}")  # noqa: S608
            params.extend(query_params)
        union = " UNION ALL ".join(parts)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT t.operation, SUM(t.count), SUM(t.errors), SUM(t.duration_sum_ms) FROM ({union}) t "  # noqa: S608
                "GROUP BY t.operation",
                params,
            )
            for op, count, errors, duration_sum_ms in cursor.fetchall():
                histogram = result.setdefault(op, Histogram())
                histogram.count += int(count)
                histogram.errors += int(errors)
                histogram.duration_sum_ms += float(duration_sum_ms)
            cursor.execute(
                f"SELECT t.operation, b.key, SUM(CAST(b.value AS BIGINT)) FROM ({union}) t, {_json_each_sql()} b "  # noqa: S608
                "GROUP BY t.operation, b.key",
                params,
            )
            for op, index, count in cursor.fetchall():
                result.setdefault(op, Histogram()).add_buckets([(index, count)])
    for item in get_store().open_minutes(
        since_epoch=epoch(plan.since), until_epoch=epoch(plan.until), operation=operation
    ):
        histogram = result.setdefault(item.operation, Histogram())
        histogram.count += item.fields.get("n", 0)
        histogram.errors += item.fields.get("e", 0)
        histogram.duration_sum_ms += item.fields.get("s", 0) / 1000.0
        histogram.add_buckets((k, v) for k, v in item.fields.items() if k not in ("n", "e", "s"))
    return plan, result


def _summary(operation: str, histogram: Histogram) -> dict:
    p50, p95, p99 = quantiles(histogram.buckets or {}, QUANTILES)
    count = histogram.count
    return {
        "operation": operation,
        "count": count,
        "errors": histogram.errors,
        "error_rate": round(histogram.errors / count, 6) if count else 0.0,
        "p50": None if p50 is None else round(p50, 3),
        "p95": None if p95 is None else round(p95, 3),
        "p99": None if p99 is None else round(p99, 3),
        "mean_ms": round(histogram.duration_sum_ms / count, 3) if count else None,
        "relative_error": RELATIVE_ERROR,
    }


def operation_summary(*, operation: str, since: datetime, until: datetime, now=None) -> dict:
    """count, errors, error rate and p50/p95/p99 (ms, within RELATIVE_ERROR) of one operation."""
    plan, histograms = histograms_in_window(since=since, until=until, operation=operation, now=now)
    return {
        **_summary(operation, histograms.get(operation, Histogram())),
        "since": plan.since,
        "until": plan.until,
    }


def operations_summary(*, since: datetime, until: datetime, now=None) -> dict:
    """The summary of every operation seen in the window, busiest first."""
    plan, histograms = histograms_in_window(since=since, until=until, now=now)
    items = sorted(histograms.items(), key=lambda item: (-item[1].count, item[0]))
    return {
        "since": plan.since,
        "until": plan.until,
        "relative_error": RELATIVE_ERROR,
        "operations": [_summary(operation, histogram) for operation, histogram in items],
    }


# --- dashboard series ---------------------------------------------------------------------------
def operation_series(*, operations: list[str], since: datetime, until: datetime, by_hour: bool) -> dict:
    """{operation: [(period start, p50, p95, p99, error rate, count)]} from rolled rows, in SQL."""
    if not operations:
        return {}
    model, period = (OperationHour, "hour") if by_hour else (OperationMinute, "minute")
    if by_hour:
        since = floor_hour(since)
    queryset = model.objects.filter(operation__in=operations, **{f"{period}__gte": since, f"{period}__lt": until})
    sql, params = queryset.values("operation", period, "count", "errors", "buckets").query.sql_with_params()
    series: dict[str, dict[datetime, Histogram]] = {op: {} for op in operations}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.operation, t.{period}, t.count, t.errors, b.key, b.value FROM ({sql}) t, {_json_each_sql()} b",  # noqa: S608
            params,
        )
        for op, start, count, errors, index, value in cursor.fetchall():
            if isinstance(start, str):  # SQLite returns text from raw SQL
                start = datetime.fromisoformat(start).replace(tzinfo=UTC)
            histogram = series[op].get(start)
            if histogram is None:
                histogram = series[op][start] = Histogram(count=count, errors=errors)
            histogram.add_buckets([(index, value)])
    result = {}
    for op, points in series.items():
        rows = []
        for start in sorted(points):
            histogram = points[start]
            p50, p95, p99 = quantiles(histogram.buckets or {}, QUANTILES)
            rate = histogram.errors / histogram.count if histogram.count else 0.0
            rows.append((start, p50, p95, p99, rate, histogram.count))
        result[op] = rows
    return result


def top_operations(*, since: datetime, until: datetime, limit: int = 5) -> list[str]:
    hours = (
        OperationHour.objects.filter(hour__gte=floor_hour(since), hour__lt=until)
        .values("operation")
        .annotate(n=Sum("count"))
        .order_by("-n", "operation")[:limit]
    )
    return [row["operation"] for row in hours]


def agent_trends(*, since: datetime, by_hour: bool, limit: int = 6) -> dict:
    """Average retries, no-progress steps and critic score per (agent, workflow, submitter) over time.

    Keyed by ``(agent, workflow, submitter username)``; the submitter is "" when its user was deleted.
    """
    trunc = TruncHour if by_hour else TruncMinute
    top = list(
        AgentRun.objects.filter(finished_at__gte=since)
        .values("agent", "workflow", "submitted_by", "submitted_by__username")
        .annotate(runs=Count("id"))
        .order_by("-runs", "agent", "workflow", "submitted_by")[:limit]
    )
    series = {}
    for pair in top:
        rows = (
            AgentRun.objects.filter(
                finished_at__gte=since,
                agent=pair["agent"],
                workflow=pair["workflow"],
                submitted_by=pair["submitted_by"],
            )
            .annotate(period=trunc("finished_at"))
            .values("period")
            .annotate(
                retries=Avg("retry_count"),
                no_progress=Avg("no_progress_count"),
                critic=Avg("critic_score"),
                runs=Count("id"),
                failures=Count("id", filter=~Q(outcome=AgentRun.Outcome.SUCCESS)),
            )
            .order_by("period")
        )
        series[(pair["agent"], pair["workflow"], pair["submitted_by__username"] or "")] = list(rows)
    return series


def system_series(*, since: datetime, by_hour: bool) -> list[dict]:
    """CPU and memory over time, averaged per minute or per hour in SQL."""
    trunc = TruncHour if by_hour else TruncMinute
    return list(
        SystemSnapshot.objects.filter(taken_at__gte=since)
        .annotate(period=trunc("taken_at"))
        .values("period")
        .annotate(cpu=Avg("cpu_percent"), memory=Avg("memory_percent"), load=Avg("load_1"))
        .order_by("period")
    )


def latest_snapshot() -> SystemSnapshot | None:
    return SystemSnapshot.objects.order_by("-taken_at").first()
