"""Trace rows for tests: made with the ORM, after their day's partition exists (as ingest does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

from django.utils import timezone

from traces import partitions
from traces.models import SpanStatus, Trace

_trace_ids = count(1)


def make_trace(
    *,
    agent,
    user_id: str,
    start: datetime,
    duration_ms: float = 1000.0,
    experiment_id: int | None = None,
    variant_id: int | None = None,
    cost: Decimal | str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    llm_calls: int = 0,
    error_count: int = 0,
    status: str = SpanStatus.OK,
) -> Trace:
    """One trace filed under the UTC day of ``start``; its partition is made first."""
    day = start.astimezone(UTC).date()
    partitions.ensure_days([day])
    return Trace.objects.create(
        trace_id=f"{next(_trace_ids):032x}",
        day=day,
        agent=agent,
        user_id=user_id,
        root_span_name="invoke_agent",
        start_time=start,
        end_time=start + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
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
