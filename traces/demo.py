"""Demo traces for ``make run``: a few agent runs of nested GenAI spans, priced by the seed table, so
the trace list, a waterfall, the unpriced models page and the dashboard's cost panels have data.

Idempotent: nothing is added when the demo traces exist already (fixed trace ids).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal

from django.utils import timezone

from traces import partitions
from traces.models import Span, SpanStatus, Trace
from traces.pricing import PriceBook, Usage

MODEL_OPERATIONS = {"chat", "text_completion", "embeddings", "generate_content"}


@dataclass(frozen=True)
class _Spec:
    name: str
    start_ms: int
    duration_ms: int
    parent: int | None = None
    operation: str = ""
    provider: str = ""
    model: str = ""
    tokens: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None)  # in, out, cache r/w
    error: str = ""
    content: dict | None = None


def _support_run(model: str, provider: str, *, fail_tool: bool = False) -> list[_Spec]:
    question = {"role": "user", "content": "My order #1042 has not arrived, can you check where it is?"}
    return [
        _Spec("invoke_agent support", 0, 4200, operation="invoke_agent"),
        _Spec(
            "embeddings text-embedding-3-small",
            40,
            180,
            0,
            "embeddings",
            "openai",
            "text-embedding-3-small",
            (24, None, None, None),
        ),
        _Spec(
            f"chat {model}",
            260,
            1400,
            0,
            "chat",
            provider,
            model,
            (3200, 180, 2048, None),
            content={"input": [question], "output": [{"role": "assistant", "content": "Let me look the order up."}]},
        ),
        _Spec("execute_tool order_lookup", 1700, 900, 0, "execute_tool", error="TimeoutError" if fail_tool else ""),
        _Spec("GET orders-api/orders/1042", 1720, 850, 3),
        _Spec(
            f"chat {model}",
            2650,
            1500,
            0,
            "chat",
            provider,
            model,
            (3600, 240, 3072, 400),
            content={"output": [{"role": "assistant", "content": "Your parcel left the depot this morning."}]},
        ),
    ]


# (agent run, model, provider, hours ago, user, failed tool)
_RUNS = [
    ("gpt-4.1-mini", "openai", 2, "user-17", False),
    ("claude-sonnet-4-5-20250929", "anthropic", 5, "user-17", False),
    ("gpt-4o-2024-08-06", "openai", 20, "user-3", True),
    ("claude-haiku-4-5-20251001", "anthropic", 30, "user-8", False),
    ("gemini-2.5-flash", "gcp.gemini", 50, "user-3", False),
    ("llama-3.1-8b-instruct", "local", 54, "user-8", False),  # no price: shows on "Unpriced models"
    ("o4-mini-2025-04-16", "openai", 70, "user-21", False),
]


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _sum(values) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def seed(*, stdout) -> None:
    from accounts.models import User
    from accounts.services import agent_create

    trace_ids = [_hex(f"demo-trace-{index}", 32) for index in range(len(_RUNS))]
    if Trace.objects.filter(trace_id__in=trace_ids).exists():
        stdout.write("traces: demo traces present")
        return
    agent = User.objects.filter(username="demo-agent").first()
    if agent is None:
        agent, _, _ = agent_create(username="demo-agent", key_name="make run demo")
    from experiments.models import Experiment

    experiment = Experiment.objects.filter(key="demo-greeting-tone").prefetch_related("variants").first()
    variants = list(experiment.variants.all()) if experiment else []
    book = PriceBook.load()
    now = timezone.now()
    spans_stored = 0
    for index, ((model, provider, hours_ago, user_id, fail_tool), trace_id) in enumerate(
        zip(_RUNS, trace_ids, strict=True)
    ):
        start = (now - timedelta(hours=hours_ago)).replace(microsecond=0)
        specs = _support_run(model, provider, fail_tool=fail_tool)
        span_ids = [_hex(f"{trace_id}-{n}", 16) for n in range(len(specs))]
        variant = variants[index % len(variants)] if variants else None
        rows = []
        for n, spec in enumerate(specs):
            begin = start + timedelta(milliseconds=spec.start_ms)
            input_tokens, output_tokens, cache_read, reasoning = spec.tokens
            usage = Usage(input_tokens, output_tokens, cache_read, None, reasoning)
            rows.append(
                Span(
                    trace_id=trace_id,
                    span_id=span_ids[n],
                    parent_span_id=span_ids[spec.parent] if spec.parent is not None else "",
                    agent=agent,
                    name=spec.name,
                    kind="client" if spec.model or spec.parent == 3 else "internal",
                    start_time=begin,
                    end_time=begin + timedelta(milliseconds=spec.duration_ms),
                    duration_ms=float(spec.duration_ms),
                    status=SpanStatus.ERROR if spec.error else SpanStatus.OK,
                    status_message="order service did not answer in 0.9 s" if spec.error else "",
                    error_type=spec.error,
                    operation=spec.operation,
                    provider=spec.provider,
                    request_model=spec.model,
                    response_model=spec.model,
                    tool_name="order_lookup" if spec.operation == "execute_tool" else "",
                    agent_name="support" if spec.operation == "invoke_agent" else "",
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cache_read_tokens=cache_read,
                    reasoning_tokens=reasoning,
                    cost=book.cost(provider=spec.provider, model=spec.model, when=begin, usage=usage),
                    user_id=user_id,
                    experiment_id=experiment.pk if variant else None,
                    variant_id=variant.pk if variant else None,
                    content=spec.content,
                    attributes={"service.name": "support-agent", "deployment.environment": "demo"},
                    received_at=now,
                )
            )
        partitions.ensure_days({row.start_time.astimezone(UTC).date() for row in rows})
        Span.objects.bulk_create(rows)
        end = max(row.end_time for row in rows)
        costs = [row.cost for row in rows if row.cost is not None]
        errors = sum(row.status == SpanStatus.ERROR for row in rows)
        Trace.objects.create(
            trace_id=trace_id,
            day=start.astimezone(UTC).date(),
            agent=agent,
            user_id=user_id,
            root_span_name=rows[0].name,
            start_time=start,
            end_time=end,
            duration_ms=(end - start).total_seconds() * 1000,
            status=SpanStatus.ERROR if errors else SpanStatus.OK,
            span_count=len(rows),
            error_count=errors,
            llm_calls=sum(row.operation in MODEL_OPERATIONS for row in rows),
            unpriced_spans=sum(1 for row in rows if row.cost is None and row.response_model and row.input_tokens),
            models_used=sorted({row.response_model for row in rows if row.response_model}),
            input_tokens=_sum(row.input_tokens for row in rows),
            output_tokens=_sum(row.output_tokens for row in rows),
            cache_read_tokens=_sum(row.cache_read_tokens for row in rows),
            reasoning_tokens=_sum(row.reasoning_tokens for row in rows),
            cost=sum(costs, Decimal(0)) if costs else None,
            experiment_id=experiment.pk if variant else None,
            variant_id=variant.pk if variant else None,
            updated_at=now,
        )
        spans_stored += len(rows)
    stdout.write(f"traces: {len(_RUNS)} demo traces ({spans_stored} spans) stored")
