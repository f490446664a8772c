"""The real OpenTelemetry SDK exporting to a live server; the database going away."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from wsgiref.util import setup_testing_defaults

import pytest
from django.db import connection
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.traces.conftest import PROTOBUF, URL, export_request, span
from traces.models import Span, Trace

ON_POSTGRESQL = connection.vendor == "postgresql"


def run_agent_turn(provider: TracerProvider, *, user: str) -> None:
    """What an instrumented agent emits for one turn: an agent span, a model call, a tool call."""
    tracer = provider.get_tracer("tests.agent", "1.0")
    with tracer.start_as_current_span(
        "invoke_agent support",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support", "user.id": user},
    ):
        with tracer.start_as_current_span(
            "chat gpt-4.1",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4.1",
                "gen_ai.response.model": "gpt-4.1",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.cache_read.input_tokens": 1000,
                "gen_ai.conversation.id": "conv-1",
                "gen_ai.request.temperature": 0.3,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool lookup_order",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"},
        ) as tool:
            tool.set_status(Status(StatusCode.ERROR, "order service timed out"))
            tool.set_attribute("error.type", "timeout")


@pytest.fixture
def otel_env(live_server, agent_key, monkeypatch):
    """The three lines of docs/traces.md, pointed at the live server."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{live_server.url}/api/v1/otel")
    # Percent-encoded, as the variable's specification says; the SDK decodes it.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Api-Key%20{agent_key.raw_key}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    return agent_key


def finished_spans(*, user: str):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    run_agent_turn(provider, user=user)
    provider.shutdown()
    return memory.get_finished_spans()


def micro(nanos: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanos // 1000)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip], ids=["protobuf", "gzip"])
def test_the_sdk_exporter_stores_the_trace_it_sent(otel_env, prices, compression):
    sent = finished_spans(user="u-sdk")
    exporter = OTLPSpanExporter(compression=compression)
    assert exporter.export(sent) == SpanExportResult.SUCCESS
    # Sent again, as after a lost answer: stored once.
    assert exporter.export(sent) == SpanExportResult.SUCCESS
    exporter.shutdown()

    stored = {row.span_id: row for row in Span.objects.all()}
    assert len(stored) == 3
    for original in sent:
        row = stored[format(original.context.span_id, "016x")]
        assert row.trace_id == format(original.context.trace_id, "032x")
        assert row.name == original.name
        assert row.agent_id == otel_env.user.pk
        assert row.start_time == micro(original.start_time) and row.end_time == micro(original.end_time)
        assert row.duration_ms == (original.end_time - original.start_time) / 1e6
        parent = format(original.parent.span_id, "016x") if original.parent else ""
        assert row.parent_span_id == parent
        assert row.attributes["service.name"] == "support-bot"
        assert row.attributes["telemetry.sdk.name"] == "opentelemetry"
    chat = next(row for row in stored.values() if row.operation == "chat")
    assert chat.kind == "client" and chat.conversation_id == "conv-1"
    assert chat.attributes["gen_ai.request.temperature"] == 0.3
    # (1200 - 1000) x 2.00 + 1000 x 0.50 + 300 x 8.00 per million: the cached part at its own price.
    assert chat.cost == (Decimal(200) * 2 + Decimal(1000) * Decimal("0.5") + Decimal(300) * 8) / 1_000_000
    tool = next(row for row in stored.values() if row.operation == "execute_tool")
    assert tool.status == "error" and tool.error_type == "timeout" and tool.status_message == "order service timed out"

    trace = Trace.objects.get()
    root = next(original for original in sent if original.parent is None)
    assert trace.root_span_name == "invoke_agent support" and trace.user_id == "u-sdk"
    assert trace.start_time == micro(root.start_time) and trace.end_time == micro(root.end_time)
    assert (trace.span_count, trace.llm_calls, trace.error_count, trace.status) == (3, 1, 1, "error")
    assert (trace.input_tokens, trace.output_tokens, trace.cache_read_tokens) == (1200, 300, 1000)
    assert trace.cost == chat.cost and trace.models_used == ["gpt-4.1"]


@pytest.mark.django_db(transaction=True)
def test_the_sdk_exporter_through_a_batch_processor_stores_every_turn(otel_env, prices):
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(compression=Compression.Gzip)))
    for number in range(20):
        run_agent_turn(provider, user=f"u-{number}")
    assert provider.force_flush(timeout_millis=30_000)
    provider.shutdown()
    assert Span.objects.count() == 60
    assert Trace.objects.count() == 20
    assert set(Trace.objects.values_list("span_count", flat=True)) == {3}
    assert Trace.objects.filter(root_span_name="invoke_agent support").count() == 20


def wsgi_post(app, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    """One request through the real WSGI handler (it drops a broken connection at the next request)."""
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD="POST",
        PATH_INFO=path,
        CONTENT_TYPE=PROTOBUF,
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": io.BytesIO(body)},
        **headers,
    )
    captured: dict = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(response_headers)

    result = app(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return captured["status"], captured["headers"], content


@pytest.mark.skipif(not ON_POSTGRESQL, reason="cuts the PostgreSQL connection through a TCP proxy")
@pytest.mark.django_db(transaction=True)
def test_the_database_down_is_a_503_with_retry_after_and_the_retry_stores(agent_key):
    from django.core.wsgi import get_wsgi_application
    from google.rpc import status_pb2

    from tests.reliability.faults import default_database_through_proxy

    now = datetime.now(UTC) - timedelta(minutes=1)
    body = export_request(
        [span(trace="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331", start=now)]
    ).SerializeToString()
    headers = {"HTTP_AUTHORIZATION": f"Api-Key {agent_key.raw_key}"}
    app = get_wsgi_application()
    with default_database_through_proxy() as proxy:
        proxy.cut()
        status, response_headers, content = wsgi_post(app, URL, body, headers)
        assert status == 503
        assert int(response_headers["Retry-After"]) >= 1
        assert status_pb2.Status.FromString(content).code == 14  # UNAVAILABLE
        proxy.restore()
        status, _headers, _content = wsgi_post(app, URL, body, headers)
        assert status == 200
    assert Span.objects.count() == 1
