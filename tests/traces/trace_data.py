"""Traces and spans written straight through the ORM (the ingest path is tested on its own), with
each trace's totals computed from its spans as ingest keeps them."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from traces import partitions
from traces.models import Span, SpanStatus, Trace
from traces.pricing import PriceBook, Usage

MODEL_OPERATIONS = {"chat", "text_completion", "embeddings", "generate_content"}
_numbers = itertools.count(1)


@dataclass
class S:
    """One span to store: offsets in ms from the trace's start; ``parent`` an index into the list."""

    name: str = "step"
    start_ms: float = 0
    duration_ms: float = 10
    parent: int | None = None
    operation: str = ""
    provider: str = ""
    model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    status: str = SpanStatus.OK
    content: dict | None = None
    extra: dict = field(default_factory=dict)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def store_trace(
    *,
    agent,
    spans: list[S],
    start: datetime | None = None,
    user_id: str = "",
    trace_id: str | None = None,
    experiment_id: int | None = None,
    variant_id: int | None = None,
    book: PriceBook | None = None,
) -> Trace:
    """Stores ``spans`` as one trace of ``agent`` (priced with ``book``, default the current prices)."""
    start = start or datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    trace_id = trace_id or new_trace_id()
    book = book or PriceBook.load()
    span_ids = [secrets.token_hex(8) for _ in spans]
    now = timezone.now()
    rows = []
    for index, spec in enumerate(spans):
        begin = start + timedelta(milliseconds=spec.start_ms)
        usage = Usage(
            spec.input_tokens,
            spec.output_tokens,
            spec.cache_read_tokens,
            spec.cache_write_tokens,
            spec.reasoning_tokens,
        )
        rows.append(
            Span(
                trace_id=trace_id,
                span_id=span_ids[index],
                parent_span_id=span_ids[spec.parent] if spec.parent is not None else "",
                agent=agent,
                name=spec.name,
                start_time=begin,
                end_time=begin + timedelta(milliseconds=spec.duration_ms),
                duration_ms=spec.duration_ms,
                status=spec.status,
                operation=spec.operation,
                provider=spec.provider,
                request_model=spec.model,
                response_model=spec.model,
                input_tokens=spec.input_tokens,
                output_tokens=spec.output_tokens,
                cache_read_tokens=spec.cache_read_tokens,
                cache_write_tokens=spec.cache_write_tokens,
                reasoning_tokens=spec.reasoning_tokens,
                cost=book.cost(provider=spec.provider, model=spec.model, when=begin, usage=usage),
                user_id=user_id,
                experiment_id=experiment_id,
                variant_id=variant_id,
                content=spec.content,
                attributes=spec.extra,
                received_at=now,
            )
        )
    partitions.ensure_days({row.start_time.astimezone(UTC).date() for row in rows})
    Span.objects.bulk_create(rows)
    return Trace.objects.create(**trace_totals(rows, agent=agent, trace_id=trace_id, now=now))


def _sum(values) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def trace_totals(rows: list[Span], *, agent, trace_id: str, now) -> dict:
    first = min(rows, key=lambda r: r.start_time)
    end = max(r.end_time for r in rows)
    costs = [r.cost for r in rows if r.cost is not None]
    errors = sum(r.status == SpanStatus.ERROR for r in rows)
    models = sorted({r.response_model for r in rows if r.response_model})
    roots = [r for r in rows if not r.parent_span_id]
    unpriced = sum(
        1
        for r in rows
        if r.cost is None and r.response_model and (r.input_tokens is not None or r.output_tokens is not None)
    )
    return {
        "trace_id": trace_id,
        "day": first.start_time.astimezone(UTC).date(),
        "agent": agent,
        "user_id": first.user_id,
        "root_span_name": (roots[0] if roots else first).name,
        "start_time": first.start_time,
        "end_time": end,
        "duration_ms": (end - first.start_time).total_seconds() * 1000,
        "status": SpanStatus.ERROR if errors else SpanStatus.OK,
        "span_count": len(rows),
        "error_count": errors,
        "llm_calls": sum(r.operation in MODEL_OPERATIONS for r in rows),
        "unpriced_spans": unpriced,
        "models_used": models,
        "input_tokens": _sum(r.input_tokens for r in rows),
        "output_tokens": _sum(r.output_tokens for r in rows),
        "cache_read_tokens": _sum(r.cache_read_tokens for r in rows),
        "cache_write_tokens": _sum(r.cache_write_tokens for r in rows),
        "reasoning_tokens": _sum(r.reasoning_tokens for r in rows),
        "cost": sum(costs, Decimal(0)) if costs else None,
        "experiment_id": first.experiment_id,
        "variant_id": first.variant_id,
        "updated_at": now,
    }


def agent_run(model: str = "test-model-a", *, provider: str = "testai", error: bool = False) -> list[S]:
    """A typical agent run: invoke_agent > (chat, execute_tool > chat)."""
    return [
        S(name="invoke_agent support", start_ms=0, duration_ms=900, operation="invoke_agent"),
        S(
            name=f"chat {model}",
            start_ms=10,
            duration_ms=300,
            parent=0,
            operation="chat",
            provider=provider,
            model=model,
            input_tokens=1000,
            output_tokens=200,
        ),
        S(
            name="execute_tool search",
            start_ms=320,
            duration_ms=400,
            parent=0,
            operation="execute_tool",
            status=SpanStatus.ERROR if error else SpanStatus.OK,
        ),
        S(
            name=f"chat {model}",
            start_ms=400,
            duration_ms=250,
            parent=2,
            operation="chat",
            provider=provider,
            model=model,
            input_tokens=1500,
            output_tokens=100,
            cache_read_tokens=1000,
        ),
    ]
