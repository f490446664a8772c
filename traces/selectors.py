"""Reads of traces, spans and prices: who may see what, filtered keyset pages, a trace's span tree,
the unpriced models, and the cost panels of the monitoring dashboard.

Every query is bounded: pages by a limit, a trace's spans by ``TRACE_MAX_SPANS_SHOWN``, the
dashboard and the unpriced list by a window of days (and on PostgreSQL each query names the
partition key, so it reads only the days it needs).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.fields.tuple_lookups import Tuple, TupleLessThan
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agentplatform.charts import PALETTE
from agentplatform.errors import NotFound, ValidationFailed
from traces.models import ModelPrice, Span, SpanStatus, Trace

# --- who may read what ---------------------------------------------------------------------------


def traces_visible_to(*, user) -> QuerySet[Trace]:
    """Every trace for readers of all traces (analysts, operators, admins); an agent's own otherwise."""
    traces = Trace.objects.all()
    if user.has_perm("traces.view_trace"):
        return traces
    if user.has_perm("traces.view_own_trace"):
        return traces.filter(agent_id=user.pk)
    return traces.none()


# --- the filtered list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceFilters:
    agent: str | None = None  # username of the agent that exported the trace
    user_id: str | None = None
    model: str | None = None  # a model among the trace's models_used
    status: str | None = None
    experiment: str | None = None  # experiment key
    variant: str | None = None  # variant key (of ``experiment``)
    since: datetime | None = None  # start_time, inclusive
    until: datetime | None = None  # start_time, exclusive
    trace_id: str | None = None


def _model_filter(traces: QuerySet[Trace], model: str) -> QuerySet[Trace]:
    if connection.vendor == "postgresql":
        # jsonb containment on the list of models the trace used.
        return traces.filter(models_used__contains=[model])
    # SQLite has no JSON containment: the traces holding a span of that model.
    spans = Span.objects.filter(Q(response_model=model) | Q(request_model=model, response_model=""))
    return traces.filter(trace_id__in=spans.values("trace_id"))


def traces_filter(traces: QuerySet[Trace], filters: TraceFilters) -> QuerySet[Trace]:
    """``traces`` narrowed by ``filters``; names that match nothing give an empty result, not an error."""
    if filters.agent:
        agent_id = get_user_model().objects.filter(username=filters.agent).values_list("pk", flat=True).first()
        traces = traces.filter(agent_id=agent_id) if agent_id is not None else traces.none()
    if filters.user_id:
        traces = traces.filter(user_id=filters.user_id)
    if filters.model:
        traces = _model_filter(traces, filters.model)
    if filters.status:
        traces = traces.filter(status=filters.status)
    if filters.experiment or filters.variant:
        from experiments.models import Experiment, Variant

        experiment_id = Experiment.objects.filter(key=filters.experiment).values_list("pk", flat=True).first()
        if experiment_id is None:
            return traces.none()
        traces = traces.filter(experiment_id=experiment_id)
        if filters.variant:
            variant_id = (
                Variant.objects.filter(experiment_id=experiment_id, key=filters.variant)
                .values_list("pk", flat=True)
                .first()
            )
            traces = traces.filter(variant_id=variant_id) if variant_id is not None else traces.none()
    if filters.since:
        # A trace is filed under the day of its earliest first-batch span, never before its start:
        # naming the partition key lets PostgreSQL skip the older days' partitions.
        traces = traces.filter(start_time__gte=filters.since, day__gte=filters.since.date())
    if filters.until:
        traces = traces.filter(start_time__lt=filters.until)
    if filters.trace_id:
        traces = traces.filter(trace_id=filters.trace_id)
    return traces


def encode_cursor(trace: Trace) -> str:
    raw = json.dumps([trace.start_time.isoformat(), trace.pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, pk = json.loads(raw)
        moment = parse_datetime(started) if isinstance(started, str) else None
        if moment is None or moment.tzinfo is None or not isinstance(pk, int) or isinstance(pk, bool):
            raise ValueError
        if not 0 <= pk < 2**63:  # a bigint: past it PostgreSQL would refuse the comparison (a 500)
            raise ValueError
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed("The cursor is not one this API returned.", details={"cursor": cursor[:100]}) from None
    return moment, pk


def trace_page(*, user, filters: TraceFilters, cursor: str | None, limit: int) -> tuple[list[Trace], str | None]:
    """One page of traces, newest first, after ``cursor``; and the next page's cursor (None at the end).

    Keyset pagination on (start_time, id), as the audit log's: a page never repeats or skips a trace
    that existed when the first page was read, and costs the same on page 1,000 as on page 1.
    """
    traces = traces_filter(traces_visible_to(user=user), filters)
    if cursor:
        started, pk = decode_cursor(cursor)
        traces = traces.filter(TupleLessThan(Tuple(F("start_time"), F("id")), (started, pk)))
    rows = list(traces.order_by("-start_time", "-id")[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None


# --- one trace and its spans ---------------------------------------------------------------------


def trace_get(*, user, trace_id: str, agent: str | None = None) -> Trace:
    """The newest trace of that id the caller may read (of ``agent`` when given); 404 otherwise.

    A trace id is unique per agent: two agents exporting the same id have two traces.
    """
    traces = traces_filter(traces_visible_to(user=user), TraceFilters(trace_id=trace_id, agent=agent))
    trace = traces.order_by("-start_time", "-id").first()
    if trace is None:
        raise NotFound("No trace with this id.", details={"trace_id": trace_id})
    return trace


def trace_spans(trace: Trace, *, limit: int | None = None) -> list[Span]:
    """The trace's spans (at most ``limit``, default ``TRACE_MAX_SPANS_SHOWN``), by start time.

    The trace's start and end bound its spans' starts, which keeps the read to their partitions.
    """
    limit = limit or settings.TRACE_MAX_SPANS_SHOWN
    return list(
        Span.objects.filter(
            agent_id=trace.agent_id,
            trace_id=trace.trace_id,
            start_time__gte=trace.start_time,
            start_time__lte=trace.end_time,
        ).order_by("start_time", "id")[:limit]
    )


@dataclass
class SpanNode:
    span: Span
    depth: int
    offset_ms: float  # from the trace's start


def span_tree(spans: list[Span], *, trace_start: datetime) -> list[SpanNode]:
    """The spans in tree order (each parent before its children, siblings by start), with depths.

    A span whose parent is missing (not exported, or past the shown limit) is drawn as a root.
    """
    ids = {span.span_id for span in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots = []
    for span in spans:  # already by start time
        if span.parent_span_id and span.parent_span_id in ids and span.parent_span_id != span.span_id:
            children[span.parent_span_id].append(span)
        else:
            roots.append(span)
    ordered: list[SpanNode] = []
    seen: set[int] = set()
    stack = [(span, 0) for span in reversed(roots)]
    while stack:  # iterative: a 1,000-deep chain must not hit the recursion limit
        span, depth = stack.pop()
        if span.pk in seen:
            continue
        seen.add(span.pk)
        offset = (span.start_time - trace_start).total_seconds() * 1000
        ordered.append(SpanNode(span=span, depth=depth, offset_ms=offset))
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, ())))
    return ordered


# --- prices ----------------------------------------------------------------------------------------


def model_price_list() -> QuerySet[ModelPrice]:
    return ModelPrice.objects.order_by("provider", "model", "-valid_from", "id")


def model_price_get(*, price_id: int) -> ModelPrice:
    price = ModelPrice.objects.filter(pk=price_id).first()
    if price is None:
        raise NotFound("No model price with this id.", details={"id": price_id})
    return price


def _priceable_unpriced(spans: QuerySet[Span]) -> QuerySet[Span]:
    """Spans that name a model and report tokens, yet have no cost: no price matched them."""
    return (
        spans.filter(cost__isnull=True)
        .filter(Q(input_tokens__isnull=False) | Q(output_tokens__isnull=False))
        .exclude(response_model="", request_model="")
    )


def unpriced_models(*, days: int = 30, now: datetime | None = None, limit: int = 200) -> list[dict]:
    """Models of spans left unpriced in the last ``days`` days, with their span count, most first."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    rows = (
        _priceable_unpriced(Span.objects.filter(start_time__gte=since, start_time__lte=now))
        .values("provider", "response_model", "request_model")
        .annotate(spans=Count("id"), last_seen=Max("start_time"))
        .order_by()
    )
    merged: dict[tuple[str, str], dict] = {}
    for row in rows[: limit * 4]:
        model = row["response_model"] or row["request_model"]
        entry = merged.setdefault(
            (row["provider"], model), {"provider": row["provider"], "model": model, "spans": 0, "last_seen": None}
        )
        entry["spans"] += row["spans"]
        if entry["last_seen"] is None or row["last_seen"] > entry["last_seen"]:
            entry["last_seen"] = row["last_seen"]
    return sorted(merged.values(), key=lambda e: (-e["spans"], e["provider"], e["model"]))[:limit]


# --- the monitoring dashboard's cost panels ----------------------------------------------------------

# Rows read for the percentiles on databases without percentile_cont (SQLite, the embedded mode).
PERCENTILE_SAMPLE_CAP = 100_000


def _days_between(since: datetime, until: datetime) -> list[date]:
    first, last = since.date(), until.date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def cost_by_day(*, since: datetime, until: datetime, by: str, top: int = len(PALETTE) - 1) -> dict:
    """Cost and tokens per UTC day, per model (``by="model"``) or per agent (``by="agent"``).

    The ``top`` groups by cost are series of their own, the rest summed as "other": seven and
    "other" by default, one colour of the charts' palette each (a ninth series took the first
    series' colour again). Per agent the
    traces' totals are summed (a tenth of the rows: a trace's cost and tokens are its spans' sums),
    each on the day its trace started; per model the spans, on the day each started.
    """
    if by == "model":
        rows_of = Span.objects.filter(start_time__gte=since, start_time__lt=until).exclude(
            response_model="", request_model=""
        )
        key_fields = ("response_model", "request_model")
    else:
        rows_of = Trace.objects.filter(start_time__gte=since, start_time__lt=until, day__gte=since.date())
        key_fields = ("agent_id",)
    rows = list(
        rows_of.annotate(utc_day=TruncDate("start_time"))
        .values("utc_day", *key_fields)
        .annotate(
            cost=Sum("cost"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
        .order_by()
    )
    names = {}
    if by == "agent":
        ids = {row["agent_id"] for row in rows}
        names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))

    def label(row) -> str:
        if by == "model":
            return row["response_model"] or row["request_model"]
        return names.get(row["agent_id"], f"agent #{row['agent_id']}")

    totals: dict[str, dict] = defaultdict(lambda: {"cost": 0.0, "tokens": 0})
    per_day: dict[tuple[str, date], dict] = defaultdict(lambda: {"cost": 0.0, "tokens": 0})
    for row in rows:
        name = label(row)
        day = row["utc_day"]
        cost = float(row["cost"] or 0)
        tokens = int(row["input_tokens"] or 0) + int(row["output_tokens"] or 0)
        for bucket in (totals[name], per_day[(name, day)]):
            bucket["cost"] += cost
            bucket["tokens"] += tokens
    ranked = sorted(totals, key=lambda name: (-totals[name]["cost"], -totals[name]["tokens"], name))
    shown = ranked[:top]
    days = _days_between(since, until)
    series: dict[str, dict[date, dict]] = {name: {} for name in shown}
    if len(ranked) > top:
        series["other"] = {}
    for (name, day), values in per_day.items():
        target = series[name if name in shown else "other"]
        bucket = target.setdefault(day, {"cost": 0.0, "tokens": 0})
        bucket["cost"] += values["cost"]
        bucket["tokens"] += values["tokens"]
    return {
        "days": days,
        "series": series,
        "totals": [{"name": name, **totals[name]} for name in ranked],
    }


def model_health(*, since: datetime, until: datetime, limit: int = 30) -> list[dict]:
    """Per model: spans, errors, error rate and the 95th percentile of the span duration (ms)."""
    spans = Span.objects.filter(start_time__gte=since, start_time__lt=until).exclude(
        response_model="", request_model=""
    )
    if connection.vendor == "postgresql":
        table = Span._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COALESCE(NULLIF(response_model, ''), request_model) AS model, count(*), "  # noqa: S608
                "count(*) FILTER (WHERE status = %s), "
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) "
                f"FROM {table} WHERE start_time >= %s AND start_time < %s "
                "AND (response_model <> '' OR request_model <> '') "
                "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s",
                [SpanStatus.ERROR, since, until, limit],
            )
            rows = cursor.fetchall()
    else:
        import numpy

        durations: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        for response, request, status, duration in spans.values_list(
            "response_model", "request_model", "status", "duration_ms"
        )[:PERCENTILE_SAMPLE_CAP]:
            model = response or request
            durations[model].append(duration)
            errors[model] += status == SpanStatus.ERROR
        rows = [
            (model, len(values), errors[model], float(numpy.percentile(values, 95)))
            for model, values in durations.items()
        ]
        rows.sort(key=lambda row: (-row[1], row[0]))
        rows = rows[:limit]
    return [
        {"model": model, "spans": count, "errors": failed, "error_rate": failed / count, "p95_ms": p95}
        for model, count, failed, p95 in rows
    ]


def top_traces_by_cost(*, since: datetime, until: datetime, limit: int = 10) -> list[Trace]:
    return list(
        Trace.objects.filter(
            start_time__gte=since, start_time__lt=until, day__gte=since.date(), cost__isnull=False
        ).order_by("-cost", "-start_time")[:limit]
    )
