"""Traces benchmarks: OTLP/HTTP protobuf ingest of 512-span requests over 4 connections.

Figure and baseline, measured in the same run:
- spans/s through ``POST /api/v1/otel/v1/traces`` (protobuf, 512 spans a request: the SDK's
  default batch; 64 traces of 8 GenAI spans each, every request new spans, priced models), with
  its p99 ÷ spans/s of a psycopg COPY of the same rows (built by the endpoint's own mapping code)
  into a bare table of ``traces_span``'s columns with only a unique index on the span key, 512 rows
  a transaction (``bench/ingest_baseline.py``).

wrk cannot build protobuf, so the bodies are made here beforehand (distinct trace ids in each) and
written to one file that the wrk script reads at start; each wrk thread walks its own share of
them. Should the load outrun the bodies, it starts again from the first (then duplicates, cheaper:
the note says how many requests that was, from the stored span count).
"""

from __future__ import annotations

import os
import random
import struct
import time
from datetime import UTC, datetime, timedelta

from bench.harness import WORK
from bench.ingest_baseline import baseline_note, copy_rows_per_second

BATCH = 512
SPANS_PER_TRACE = 8
THREADS = 2
CONNECTIONS = 4
SPAN_KEY = "agent_id, trace_id, span_id, start_time"

SPAN_COLUMNS = (
    ("agent_id", "bigint"),
    ("trace_id", "varchar(32)"),
    ("span_id", "varchar(16)"),
    ("parent_span_id", "varchar(16)"),
    ("name", "varchar(300)"),
    ("kind", "varchar(16)"),
    ("start_time", "timestamptz"),
    ("end_time", "timestamptz"),
    ("duration_ms", "double precision"),
    ("status", "varchar(8)"),
    ("status_message", "varchar(500)"),
    ("operation", "varchar(64)"),
    ("provider", "varchar(64)"),
    ("request_model", "varchar(200)"),
    ("response_model", "varchar(200)"),
    ("tool_name", "varchar(200)"),
    ("tool_call_id", "varchar(200)"),
    ("agent_name", "varchar(200)"),
    ("conversation_id", "varchar(200)"),
    ("error_type", "varchar(200)"),
    ("user_id", "varchar(200)"),
    ("prompt_type", "varchar(100)"),
    ("experiment_id", "bigint"),
    ("variant_id", "bigint"),
    ("prompt_version_id", "bigint"),
    ("attributes", "jsonb"),
    ("content", "jsonb"),
    ("received_at", "timestamptz"),
    ("input_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("cache_read_tokens", "bigint"),
    ("cache_write_tokens", "bigint"),
    ("reasoning_tokens", "bigint"),
    ("cost", "numeric(20, 10)"),
)


def _kv(key: str, value):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def export_request(rng: random.Random, *, start: datetime, traces: int = BATCH // SPANS_PER_TRACE):
    """One ExportTraceServiceRequest of ``traces`` agent turns, 8 spans each, as an SDK sends it."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    base = int((start - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000_000
    spans = []
    for turn in range(traces):
        trace_id = rng.randbytes(16)
        root_id = rng.randbytes(8)
        user = f"user-{rng.randrange(5000)}"
        t0 = base + turn * 3_000_000_000
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=root_id,
                name="invoke_agent support",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=t0,
                end_time_unix_nano=t0 + 2_500_000_000,
                attributes=[
                    _kv("gen_ai.operation.name", "invoke_agent"),
                    _kv("gen_ai.agent.name", "support"),
                    _kv("gen_ai.conversation.id", f"conv-{turn}"),
                    _kv("user.id", user),
                ],
                status=Status(code=Status.STATUS_CODE_OK),
            )
        )
        for step in range(1, SPANS_PER_TRACE):
            s0 = t0 + step * 250_000_000
            tool = step % 3 == 0
            attributes = (
                [
                    _kv("gen_ai.operation.name", "execute_tool"),
                    _kv("gen_ai.tool.name", "lookup_order"),
                    _kv("gen_ai.tool.call.id", f"call-{turn}-{step}"),
                    _kv("user.id", user),
                ]
                if tool
                else [
                    _kv("gen_ai.operation.name", "chat"),
                    _kv("gen_ai.provider.name", "openai"),
                    _kv("gen_ai.request.model", "gpt-4.1"),
                    _kv("gen_ai.response.model", "gpt-4.1-2025-04-14"),
                    _kv("gen_ai.usage.input_tokens", 1200 + step),
                    _kv("gen_ai.usage.output_tokens", 300 + step),
                    _kv("gen_ai.usage.cache_read.input_tokens", 1000),
                    _kv("gen_ai.request.temperature", 0.2),
                    _kv("gen_ai.request.max_tokens", 1024),
                    _kv("gen_ai.response.id", f"chatcmpl-{turn}-{step}"),
                    _kv("gen_ai.response.finish_reasons", "stop"),
                    _kv("user.id", user),
                ]
            )
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=rng.randbytes(8),
                    parent_span_id=root_id,
                    name="execute_tool lookup_order" if tool else "chat gpt-4.1",
                    kind=Span.SPAN_KIND_INTERNAL if tool else Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=s0,
                    end_time_unix_nano=s0 + 200_000_000,
                    attributes=attributes,
                )
            )
    resource = Resource(
        attributes=[
            _kv("service.name", "support-bot"),
            _kv("service.version", "1.4.2"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.version", "1.45.2"),
        ]
    )
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )


def write_bodies(path, count: int, *, start: datetime, seed: int = 7) -> int:
    """``count`` distinct serialized requests, each prefixed by its length (4 bytes, big-endian)."""
    rng = random.Random(seed)
    size = 0
    with open(path, "wb") as out:
        for _ in range(count):
            body = export_request(rng, start=start).SerializeToString()
            out.write(struct.pack(">I", len(body)))
            out.write(body)
            size += len(body)
    return size // count


LUA = """
local bodies = {}
local counter = 0
local made = 0
function setup(thread)
  made = made + 1
  thread:set("tid", made)
end
function init(args)
  local file = assert(io.open(%(prefix)s .. tid .. ".bin", "rb"))
  local data = file:read("*all")
  file:close()
  local pos = 1
  while pos <= #data do
    local a, b, c, d = string.byte(data, pos, pos + 3)
    local length = ((a * 256 + b) * 256 + c) * 256 + d
    bodies[#bodies + 1] = string.sub(data, pos + 4, pos + 3 + length)
    pos = pos + 4 + length
  end
end
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[((counter - 1) %% #bodies) + 1])
end
"""


def _seed_prices() -> None:
    from decimal import Decimal

    from traces.models import ModelPrice

    ModelPrice.objects.get_or_create(
        provider="openai",
        model="gpt-4.1*",
        valid_from=datetime(2024, 1, 1, tzinfo=UTC),
        defaults={
            "input_per_million": Decimal("2.00"),
            "cached_input_per_million": Decimal("0.50"),
            "output_per_million": Decimal("8.00"),
        },
    )


def _baseline_rows(bodies: int, start: datetime, agent_id: int) -> list[tuple]:
    """The rows the endpoint would COPY for the same kind of requests, made by its own code."""
    from django.utils import timezone

    from traces import ingest
    from traces.pricing import PriceBook

    rng = random.Random(11)
    rows = []
    book = PriceBook.load()
    now = timezone.now()
    for _ in range(bodies):
        message = export_request(rng, start=start)
        for resource_spans in message.resource_spans:
            resource = ingest.key_values(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    row, _record, _query = ingest._span_row(
                        span,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        agent_id=agent_id,
                        now=now,
                        book=book,
                        resource_user="",
                        resource_kept=resource,
                        resource_text=ingest._json(resource)[1:-1],
                        user_attributes=("user.id",),
                        store_content=False,
                        attributes_limit=8192,
                        content_limit=32768,
                    )
                    rows.append(tuple(row))
    return rows


def run(bench) -> None:
    bench.setup_django()
    from traces.models import Span

    _seed_prices()
    headers = bench.agent_headers()
    headers["Content-Type"] = "application/x-protobuf"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    # Enough distinct bodies for 40,000 spans/s over the load, one file per wrk thread (each thread
    # walks its own); a faster load would wrap around to bodies already sent (duplicates).
    per_thread = max(50, int(40_000 * bench.duration / BATCH / THREADS))
    WORK.mkdir(parents=True, exist_ok=True)
    prefix = WORK / "otlp_bodies_"
    made = time.perf_counter()
    for thread in range(1, THREADS + 1):
        body_bytes = write_bodies(
            f"{prefix}{thread}.bin", per_thread, start=start, seed=thread * 1_000_003 + int(time.time())
        )
    print(
        f"  ({THREADS} x {per_thread} bodies of {BATCH} spans, ~{body_bytes:,} bytes each, "
        f"made in {time.perf_counter() - made:.1f} s)",
        flush=True,
    )
    before = Span.objects.count()
    lua = LUA % {"prefix": '"' + str(prefix) + '"'}
    result = bench.load(
        "/api/v1/otel/v1/traces",
        method="POST",
        headers=headers,
        lua=lua,
        connections=CONNECTIONS,
        threads=THREADS,
    )
    stored = Span.objects.count() - before
    for thread in range(1, THREADS + 1):
        os.unlink(f"{prefix}{thread}.bin")
    wrapped = max(0, result.requests - per_thread * THREADS)
    spans_per_s = result.requests_per_s * BATCH

    agent_id = Span.objects.values_list("agent_id", flat=True).first() or 1
    total = max(BATCH * 40, int(BATCH * 400 * bench.scale))
    rows = _baseline_rows(total // BATCH, start, agent_id)
    baseline = copy_rows_per_second(
        bench, table="bench_copy_spans", columns=SPAN_COLUMNS, rows=rows, batch=BATCH, key=SPAN_KEY
    )
    bench.record(
        "OTLP protobuf spans/s (512-span requests, 4 connections)",
        spans_per_s,
        "spans/s",
        baseline=baseline,
        baseline_name="psycopg COPY of the same rows, same columns, unique span key only",
        target="≥ 0.25 and ≥ 20,000 spans/s",
        note=f"{result.requests_per_s:.1f} requests/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"{result.non_2xx} non-2xx, {result.errors} socket errors; {stored:,} spans stored "
        f"({wrapped} requests re-sent bodies: duplicates); "
        + baseline_note("bench_copy_spans", SPAN_COLUMNS, BATCH, key=SPAN_KEY),
    )
