"""Trace rows for tests: made with the ORM, after their day's partition exists (as ingest does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

from django.utils import timezone

from traces import partitions
from traces.models import SpanStatus, Trace

_trace_ids = count(1)


def make_trace(**fields) -> Trace:
    """One stored trace (``trace_row``'s fields), filed under the UTC day of its start."""
    row = trace_row(**fields)
    save_traces([row])
    return row


def trace_row(
    *,
    agent,
    user_id: str,
    start: datetime,
    end: datetime | None = None,
    experiment_id: int | None = None,
    variant_id: int | None = None,
    cost: Decimal | str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    llm_calls: int = 0,
    error_count: int = 0,
    status: str = SpanStatus.OK,
) -> Trace:
    """An unsaved trace (for ``save_traces``); it ends a second after ``start`` unless told."""
    end = end or start + timedelta(seconds=1)
    return Trace(
        trace_id=f"{next(_trace_ids):032x}",
        day=start.astimezone(UTC).date(),
        agent=agent,
        user_id=user_id,
        root_span_name="invoke_agent",
        start_time=start,
        end_time=end,
        duration_ms=(end - start).total_seconds() * 1000,
        status=status,
        span_count=max(1, llm_calls),
        error_count=error_count,
        llm_calls=llm_calls,
        cost=Decimal(cost) if cost is not None else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        experiment_id=experiment_id,
        variant_id=variant_id,
        updated_at=timezone.now(),
    )


def save_traces(rows: list[Trace]) -> None:
    """Stores unsaved traces, their days' partitions made first."""
    partitions.ensure_days({row.day for row in rows})
    Trace.objects.bulk_create(rows, batch_size=1000)
