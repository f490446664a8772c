"""The OTLP/HTTP endpoint's answers: encodings, compression, refusals, limits, content."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan

from tests.traces.conftest import PROTOBUF, URL, export_request, nanos, post_protobuf, span
from traces.models import Span, Trace

pytestmark = pytest.mark.django_db
TRACE = "5b8efff798038103d269b633813fc60c"


def otlp_json(now, *, trace_id: str = TRACE.upper(), span_id: str = "EEE19B7EC3C1B174") -> dict:
    """An OTLP/JSON body as the specification writes it: lowerCamelCase, hex ids, enums as integers,
    64-bit integers as strings."""
    start = nanos(now)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-bot"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "manual", "version": "1.0"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": "",
                                "name": "chat gpt-4.1",
                                "kind": 3,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(start + 250_000_000),
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4.1"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 200}},
                                    {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.2}},
                                    {"key": "user.id", "value": {"stringValue": "u-json"}},
                                ],
                                "status": {"code": 1},
                                "someFutureField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }


def test_an_otlp_json_body_with_hex_ids_is_stored_and_answered_in_json(client, agent_key, prices, now):
    response = client.post(URL, data=json.dumps(otlp_json(now)), content_type="application/json", **agent_key)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {}  # an empty ExportTraceServiceResponse: everything accepted
    stored = Span.objects.get()
    assert (stored.trace_id, stored.span_id) == (TRACE, "eee19b7ec3c1b174")
    assert stored.kind == "client" and stored.status == "ok" and stored.duration_ms == 250
    assert (stored.input_tokens, stored.output_tokens, stored.user_id) == (1000, 200, "u-json")
    assert stored.attributes == {"service.name": "json-bot", "gen_ai.request.temperature": 0.2}
    assert str(stored.cost) == "0.0036000000"  # 1000 x 2.00 + 200 x 8.00 per million
    assert Trace.objects.get().user_id == "u-json"


def test_json_partial_success_names_the_refused_spans(client, agent_key, now):
    body = otlp_json(now, span_id="not-hex")
    response = client.post(URL, data=json.dumps(body), content_type="application/json", **agent_key)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "span_id" in partial["errorMessage"]
    assert not Span.objects.exists()


def test_a_gzipped_protobuf_body_is_stored(client, agent_key, now):
    message = export_request([span(trace=TRACE, span_id="eee19b7ec3c1b174", start=now)])
    response = post_protobuf(client, message, agent_key, compress=True)
    assert response.status_code == 200
    assert Span.objects.count() == 1


def test_a_gzipped_json_body_is_stored(client, agent_key, now):
    body = gzip.compress(json.dumps(otlp_json(now)).encode())
    response = client.post(URL, data=body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip", **agent_key)
    assert response.status_code == 200
    assert Span.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "encoding", "compressed"),
    [
        (b"\x0a\xff\xff\xff\x0f", PROTOBUF, False),  # a field whose length runs past the end
        (b"{not json", "application/json", False),
        (b'["a list"]', "application/json", False),
        (b'{"resourceSpans": "no"}', "application/json", False),
        (b"\x1f\x8b\x08\x00garbage", PROTOBUF, True),  # a gzip header, then no deflate stream
        (gzip.compress(b"x" * 100)[:-12], PROTOBUF, True),  # truncated
    ],
    ids=["protobuf-garbage", "bad-json", "json-not-object", "json-wrong-shape", "bad-gzip", "truncated-gzip"],
)
def test_an_undecodable_body_is_a_400_and_stores_nothing(client, agent_key, body, encoding, compressed):
    extra = {"HTTP_CONTENT_ENCODING": "gzip"} if compressed else {}
    response = client.post(URL, data=body, content_type=encoding, **agent_key, **extra)
    assert response.status_code == 400
    if encoding == PROTOBUF:
        # OTLP: a google.rpc.Status in the request's encoding (3 = INVALID_ARGUMENT).
        assert response["Content-Type"] == PROTOBUF
        status = status_pb2.Status.FromString(response.content)
        assert status.code == 3 and status.message
    else:
        assert response.json()["error"]["code"] == "malformed_request"
    assert not Span.objects.exists()


def test_another_content_type_is_a_415(client, agent_key):
    response = client.post(URL, data="a=b", content_type="application/x-www-form-urlencoded", **agent_key)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_another_content_encoding_is_a_415(client, agent_key):
    response = client.post(URL, data=b"\x00", content_type=PROTOBUF, HTTP_CONTENT_ENCODING="br", **agent_key)
    assert response.status_code == 415


def test_a_gzip_bomb_is_refused_without_inflating_it_all(client, agent_key, settings):
    settings.TRACE_MAX_REQUEST_BYTES = 64 * 1024
    bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024))  # 50 MB of zeros in ~50 kB
    assert len(bomb) < settings.TRACE_MAX_REQUEST_BYTES
    response = client.post(URL, data=bomb, content_type=PROTOBUF, HTTP_CONTENT_ENCODING="gzip", **agent_key)
    assert response.status_code == 413
    assert status_pb2.Status.FromString(response.content).code == 8  # RESOURCE_EXHAUSTED


def test_no_api_key_is_a_401(client):
    response = client.post(URL, data=b"", content_type="application/json")
    assert response.status_code == 401


def test_a_key_without_the_push_permission_is_refused(client, user_factory, now):
    from accounts.services import api_key_create

    analyst = user_factory(role="analyst")
    _key, raw_key = api_key_create(user=analyst, name="not-an-agent")
    message = export_request([span(trace=TRACE, span_id="eee19b7ec3c1b174", start=now)])
    response = client.post(
        URL, data=message.SerializeToString(), content_type=PROTOBUF, HTTP_AUTHORIZATION=f"Api-Key {raw_key}"
    )
    assert response.status_code == 403
    assert status_pb2.Status.FromString(response.content).code == 7  # PERMISSION_DENIED
    assert not Span.objects.exists()


def test_over_the_rate_limit_is_a_429_with_retry_after(client, agent_key, settings, now):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "traces.ingest": "2/m"}
    settings.RATELIMIT_ENABLE = True
    message = export_request([span(trace=TRACE, span_id="eee19b7ec3c1b174", start=now)])
    assert [post_protobuf(client, message, agent_key).status_code for _ in range(2)] == [200, 200]
    refused = post_protobuf(client, message, agent_key)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert status_pb2.Status.FromString(refused.content).code == 8
    json_refused = client.post(URL, data=json.dumps(otlp_json(now)), content_type="application/json", **agent_key)
    assert json_refused.status_code == 429 and json_refused.json()["error"]["code"] == "rate_limited"
    assert int(json_refused["Retry-After"]) >= 1


MESSAGES = [
    {"role": "user", "parts": [{"type": "text", "content": "Log me in"}]},
    {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "c1", "name": "login", "arguments": {"user": "bob", "password": "hunter2"}}
        ],
    },
]


ANSWER = [{"role": "assistant", "parts": [{"type": "text", "content": "Done"}]}]


def content_span(now):
    event = OtlpSpan.Event(
        name="gen_ai.user.message",
        time_unix_nano=nanos(now),
        attributes=[KeyValue(key="content", value=AnyValue(string_value="hello from an event"))],
    )
    return span(
        trace=TRACE,
        span_id="eee19b7ec3c1b174",
        start=now,
        attrs={
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Done"}]}]
            ),
            "gen_ai.system_instructions": "Be brief.",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "older form",
            "gen_ai.completion.0.content": "older answer",
            "llm.input_messages.0.message.role": "user",
        },
        events=[event],
    )


def test_content_is_not_stored_by_default_nor_kept_among_the_attributes(client, agent_key, now):
    assert post_protobuf(client, export_request([content_span(now)]), agent_key).status_code == 200
    stored = Span.objects.get()
    assert stored.content is None
    assert stored.attributes == {"service.name": "support-bot"}


def test_content_is_stored_masked_with_the_setting(client, agent_key, settings, now):
    settings.TRACE_STORE_CONTENT = True
    assert post_protobuf(client, export_request([content_span(now)]), agent_key).status_code == 200
    stored = Span.objects.get()
    content = stored.content
    assert content["system"] == "Be brief."
    assert content["input"][0] == MESSAGES[0]
    assert content["input"][1]["parts"][0]["arguments"] == {"user": "bob", "password": "***"}  # audit masking
    assert {"role": "user", "content": "older form"} in content["input"]
    assert {"role": "user", "content": "hello from an event"} in content["input"]
    assert content["output"][0]["parts"][0]["content"] == "Done"
    assert {"content": "older answer"} in content["output"]
    assert stored.attributes == {"service.name": "support-bot"}


def test_content_past_the_cap_becomes_a_marker_with_a_preview(client, agent_key, settings, now):
    settings.TRACE_STORE_CONTENT = True
    settings.TRACE_CONTENT_MAX_BYTES = 1024
    big = span(
        trace=TRACE,
        span_id="eee19b7ec3c1b174",
        start=now,
        attrs={"gen_ai.input.messages": json.dumps([{"role": "user", "content": '"quoted" \\ ' * 500}])},
    )
    assert post_protobuf(client, export_request([big]), agent_key).status_code == 200
    content = Span.objects.get().content
    assert content["truncated"] is True and content["bytes"] > 5000
    assert len(json.dumps(content).encode()) <= 1024


def test_an_agent_files_spans_under_its_own_name(client, agent_key, user_factory, now):
    from accounts.services import api_key_create

    other = user_factory(role="agent", password=None)
    _key, other_raw = api_key_create(user=other, name="other")
    message = export_request([span(trace=TRACE, span_id="eee19b7ec3c1b174", start=now)])
    assert post_protobuf(client, message, agent_key).status_code == 200
    response = client.post(
        URL, data=message.SerializeToString(), content_type=PROTOBUF, HTTP_AUTHORIZATION=f"Api-Key {other_raw}"
    )
    assert response.status_code == 200
    # The same trace and span ids from two agents are two traces: ids are the agent's own.
    assert sorted(Trace.objects.values_list("agent_id", flat=True)) == sorted([agent_key.user.pk, other.pk])
    assert Span.objects.count() == 2


def test_a_span_in_the_far_past_after_a_recent_one_keeps_the_trace_day(client, agent_key, now):
    later = span(trace=TRACE, span_id="eee19b7ec3c1b174", start=now)
    earlier = span(trace=TRACE, span_id="aaa19b7ec3c1b174", start=now - timedelta(days=2))
    post_protobuf(client, export_request([later]), agent_key)
    post_protobuf(client, export_request([earlier]), agent_key)
    trace = Trace.objects.get()
    assert trace.day == now.date() and trace.start_time == now - timedelta(days=2)


def test_a_body_declared_larger_than_the_limit_is_a_413_before_it_is_read(client, agent_key, settings):
    from traces.otlp_api import OtlpTracesView

    declared = OtlpTracesView.max_body_bytes + 1
    response = client.post(URL, data=b"\x00", content_type=PROTOBUF, CONTENT_LENGTH=str(declared), **agent_key)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"  # the middleware's envelope
