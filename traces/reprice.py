"""Reprice spans since a date after a price change: a ``RepriceJob`` whose progress the admin shows.

``spans_reprice`` files the job (audited) and queues the Celery task ``traces.reprice_spans`` once
its transaction commits; ``reprice_job_run`` does the work:

1. one fresh ``PriceBook`` (every price as it is now) for the whole run;
2. day by day from ``since`` (one partition per day on PostgreSQL), spans in keyset chunks of
   ``TRACE_REPRICE_CHUNK`` by (start_time, id): each span's cost recomputed, the changed ones
   written back with one UPDATE per chunk bounded to that day (so it touches one partition), and
   ``spans_done`` advanced after each chunk in its own short transaction;
3. the traces holding a visited span get their ``cost`` and ``unpriced_spans`` summed again from
   all their spans (a trace may start before ``since``), once per day, written only where they
   differ;
4. ``state`` done, or failed with the error (the spans repriced so far keep their new cost: running
   the job again finishes it, each span's cost being a function of the prices alone).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan
from django.utils import timezone

from audit.services import audit_log
from traces.mapping import COUNT_FIELDS, MODEL_OPERATIONS, is_model_call
from traces.models import RepriceJob, Span, Trace
from traces.pricing import PriceBook, Usage

logger = logging.getLogger(__name__)

RESOURCE_TYPE = "reprice_job"
_SPAN_FIELDS = (
    "id",
    "agent_id",
    "trace_id",
    "start_time",
    "operation",
    "provider",
    "request_model",
    "response_model",
    *COUNT_FIELDS,
    "cost",
)


def model_call_condition() -> Q:
    """``traces.mapping.is_model_call`` with usage, as a query: the spans ingest prices.

    A model operation, or (no operation named) a model; and token counts. Other spans (an agent's
    ``invoke_agent`` span repeating its children's usage, a tool) are never priced, so a trace's
    cost is never charged twice.
    """
    usage = Q(input_tokens__isnull=False) | Q(output_tokens__isnull=False)
    model = ~Q(response_model="", request_model="")
    return usage & (Q(operation__in=MODEL_OPERATIONS) | (Q(operation="") & model))


def unpriced_condition() -> Q:
    """A model call with usage but no cost: no price matched it (ingest counts the same spans)."""
    return Q(cost__isnull=True) & model_call_condition()


def spans_reprice(*, actor, since: datetime, request=None) -> RepriceJob:
    """Files a job repricing every span that started at or after ``since``, queued on commit."""
    from traces.tasks import reprice_spans_task

    with transaction.atomic():
        job = RepriceJob.objects.create(since=since, requested_by=actor if getattr(actor, "pk", None) else None)
        audit_log(
            actor=actor,
            action="spans.reprice_requested",
            resource_type=RESOURCE_TYPE,
            resource_id=job.pk,
            details={"since": since.isoformat()},
            request=request,
        )
        transaction.on_commit(lambda: reprice_spans_task.delay(job_id=job.pk))
    return job


def _span_cost(book: PriceBook, span: Span) -> Decimal | None:
    model = span.response_model or span.request_model
    has_usage = span.input_tokens is not None or span.output_tokens is not None
    if not is_model_call(span.operation, model, has_usage):
        return None  # as at ingest: only model calls are priced
    return book.cost(
        provider=span.provider,
        model=model,
        when=span.start_time,
        usage=Usage(*(getattr(span, name) for name in COUNT_FIELDS)),
    )


def traces_recompute_cost(keys: Iterable[tuple[int, str]]) -> int:
    """Sets ``cost`` and ``unpriced_spans`` of the traces of these (agent id, trace id) keys from
    all their spans; returns how many traces changed."""
    keys = sorted(set(keys))
    updated = 0
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        wanted = set(batch)
        agent_ids = sorted({agent_id for agent_id, _ in batch})
        trace_ids = sorted({trace_id for _, trace_id in batch})
        # Two IN lists (each served by an index of every partition) and the pairs picked in Python:
        # 500 OR-ed (agent, trace) conditions made PostgreSQL bitmap-scan every partition, ~15 s a
        # batch at 10 M spans.
        traces = [
            trace
            for trace in Trace.objects.filter(trace_id__in=trace_ids, agent_id__in=agent_ids)
            if (trace.agent_id, trace.trace_id) in wanted
        ]
        if not traces:
            continue
        # The traces' own bounds keep the span read to the partitions of their days.
        low = min(trace.start_time for trace in traces)
        high = max(trace.end_time for trace in traces)
        sums = {
            (row["agent_id"], row["trace_id"]): row
            for row in Span.objects.filter(
                agent_id__in=agent_ids, trace_id__in=trace_ids, start_time__gte=low, start_time__lte=high
            )
            .values("agent_id", "trace_id")
            .annotate(total=Sum("cost"), unpriced=Count("id", filter=unpriced_condition()))
            .order_by()
        }
        changed = []
        for trace in traces:
            row = sums.get((trace.agent_id, trace.trace_id))
            total = row["total"] if row else None
            unpriced = row["unpriced"] if row else 0
            if trace.cost != total or trace.unpriced_spans != unpriced:
                trace.cost, trace.unpriced_spans = total, unpriced
                changed.append(trace)
        if changed:
            with transaction.atomic():
                # Bounded to the traces' days: the update reaches only their partitions.
                Trace.objects.filter(
                    day__gte=min(t.day for t in changed), day__lte=max(t.day for t in changed)
                ).bulk_update(changed, ["cost", "unpriced_spans"])
            updated += len(changed)
    return updated


def _days(since: datetime) -> list[tuple[datetime, datetime]]:
    """[low, high) windows of whole UTC days from ``since`` to the last span's day."""
    bounds = Span.objects.filter(start_time__gte=since).aggregate(first=Min("start_time"), last=Max("start_time"))
    if bounds["first"] is None:
        return []
    day = bounds["first"].astimezone(UTC).date()
    last = bounds["last"].astimezone(UTC).date()
    windows = []
    while day <= last:
        low = datetime.combine(day, time(0), tzinfo=UTC)
        windows.append((max(low, since), low + timedelta(days=1)))
        day += timedelta(days=1)
    return windows


def _set_progress(job: RepriceJob, **fields) -> None:
    RepriceJob.objects.filter(pk=job.pk).update(**fields)
    for name, value in fields.items():
        setattr(job, name, value)


def reprice_job_run(*, job_id: int) -> RepriceJob:
    """Runs a filed reprice job to its end (see the module docstring); a failure is recorded on the job."""
    job = RepriceJob.objects.get(pk=job_id)
    if job.state == RepriceJob.State.DONE:
        return job  # a redelivered task; one redelivered after a crash mid-run starts over (idempotent)
    total = Span.objects.filter(start_time__gte=job.since).count()
    _set_progress(job, state=RepriceJob.State.RUNNING, spans_total=total, spans_done=0, error="")
    chunk = settings.TRACE_REPRICE_CHUNK
    book = PriceBook.load()
    done = changed_spans = changed_traces = 0
    try:
        for low, high in _days(job.since):
            day_spans = Span.objects.filter(start_time__gte=low, start_time__lt=high)
            touched: set[tuple[int, str]] = set()
            after = None
            while True:
                page = day_spans.only(*_SPAN_FIELDS).order_by("start_time", "id")
                if after is not None:
                    page = page.filter(TupleGreaterThan(Tuple(F("start_time"), F("id")), after))
                spans = list(page[:chunk])
                if not spans:
                    break
                after = (spans[-1].start_time, spans[-1].pk)
                changed = []
                for span in spans:
                    # Every visited span's trace, not only the changed ones': after a run that failed
                    # between the spans' update and their traces', the rerun finds the spans priced
                    # already and must still bring the traces' totals level with them.
                    touched.add((span.agent_id, span.trace_id))
                    cost = _span_cost(book, span)
                    if cost != span.cost:
                        span.cost = cost
                        changed.append(span)
                with transaction.atomic():
                    if changed:
                        day_spans.bulk_update(changed, ["cost"])
                    done += len(spans)
                    _set_progress(job, spans_done=done)
                changed_spans += len(changed)
            changed_traces += traces_recompute_cost(touched)
    except Exception as exc:
        logger.exception("reprice job %s failed", job.pk)
        _set_progress(
            job, state=RepriceJob.State.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        audit_log(
            actor=job.requested_by,
            action="spans.reprice_failed",
            resource_type=RESOURCE_TYPE,
            resource_id=job.pk,
            success=False,
            severity="error",
            details={"spans_done": done, "error": job.error[:500]},
        )
        raise
    _set_progress(job, state=RepriceJob.State.DONE, spans_done=done, finished_at=timezone.now())
    audit_log(
        actor=job.requested_by,
        action="spans.repriced",
        resource_type=RESOURCE_TYPE,
        resource_id=job.pk,
        details={
            "since": job.since.isoformat(),
            "spans": done,
            "spans_changed": changed_spans,
            "traces_changed": changed_traces,
        },
    )
    return job
