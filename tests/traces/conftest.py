"""Fixtures of the traces tests: OTLP requests built with opentelemetry-proto, prices, an agent."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

URL = "/api/v1/otel/v1/traces"
PROTOBUF = "application/x-protobuf"


def value(item) -> AnyValue:
    if isinstance(item, bool):
        return AnyValue(bool_value=item)
    if isinstance(item, int):
        return AnyValue(int_value=item)
    if isinstance(item, float):
        return AnyValue(double_value=item)
    return AnyValue(string_value=str(item))


def attributes(mapping: dict) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(item)) for key, item in mapping.items()]


def nanos(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 1000


def span(
    *,
    trace: str,
    span_id: str,
    parent: str = "",
    name: str = "span",
    start: datetime,
    duration_ms: float = 100.0,
    attrs: dict | None = None,
    status: int = 0,
    events: Iterable[Span.Event] = (),
    kind: int = Span.SPAN_KIND_INTERNAL,
) -> Span:
    return Span(
        trace_id=bytes.fromhex(trace),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=name,
        kind=kind,
        start_time_unix_nano=nanos(start),
        end_time_unix_nano=nanos(start) + int(duration_ms * 1_000_000),
        attributes=attributes(attrs or {}),
        status=Status(code=status),
        events=list(events),
    )


def export_request(spans: list[Span], *, resource: dict | None = None) -> ExportTraceServiceRequest:
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attributes(resource or {"service.name": "support-bot"})),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )


def post_protobuf(client, message: ExportTraceServiceRequest, key, *, compress: bool = False):
    """Django test client POST of a protobuf export (``key``: the agent_key fixture's header)."""
    body = message.SerializeToString()
    extra = {}
    if compress:
        body = gzip.compress(body)
        extra["HTTP_CONTENT_ENCODING"] = "gzip"
    return client.post(URL, data=body, content_type=PROTOBUF, **key, **extra)


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


@pytest.fixture
def prices(db):
    """gpt-4.1 (OpenAI) with its cached-input price; claude-sonnet-4* by glob, with cache writes."""
    from traces.models import ModelPrice

    since = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        ModelPrice.objects.create(
            provider="openai",
            model="gpt-4.1",
            input_per_million=Decimal("2.00"),
            cached_input_per_million=Decimal("0.50"),
            output_per_million=Decimal("8.00"),
            valid_from=since,
        ),
        ModelPrice.objects.create(
            provider="",
            model="claude-sonnet-4*",
            input_per_million=Decimal("3.00"),
            cached_input_per_million=Decimal("0.30"),
            cache_write_per_million=Decimal("3.75"),
            output_per_million=Decimal("15.00"),
            valid_from=since,
        ),
    ]


def http_post(base_url: str, body: bytes, *, raw_key: str, content_type: str = PROTOBUF, **headers) -> httpx.Response:
    return httpx.post(
        base_url + URL,
        content=body,
        headers={"Authorization": f"Api-Key {raw_key}", "Content-Type": content_type, **headers},
        timeout=30,
    )
