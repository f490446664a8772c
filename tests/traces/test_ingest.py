"""The ingest service through the endpoint (Django's test client): totals, duplicates, order, cost."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.traces.conftest import export_request, post_protobuf, span
from traces.models import Span, Trace

TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT = "b7ad6b7169203331"
CHAT = "00f067aa0ba902b7"
TOOL = "53995c3f42cd8ad8"

pytestmark = pytest.mark.django_db


def answer(response) -> ExportTraceServiceResponse:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/x-protobuf"
    return ExportTraceServiceResponse.FromString(response.content)


def chat_span(now, *, span_id=CHAT, parent=ROOT, model="gpt-4.1", offset_ms=10, **extra):
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "gen_ai.usage.cache_read.input_tokens": 400,
        **extra,
    }
    return span(
        trace=TRACE,
        span_id=span_id,
        parent=parent,
        name=f"chat {model}",
        start=now + timedelta(milliseconds=offset_ms),
        duration_ms=500,
        attrs=attrs,
    )


def root_span(now, **attrs):
    return span(
        trace=TRACE,
        span_id=ROOT,
        name="invoke_agent support",
        start=now,
        duration_ms=2000,
        attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support", "user.id": "u-42", **attrs},
    )


def test_a_nested_trace_is_stored_with_its_totals(client, agent_key, prices, now):
    tool = span(
        trace=TRACE,
        span_id=TOOL,
        parent=ROOT,
        name="execute_tool search",
        start=now + timedelta(milliseconds=600),
        duration_ms=300,
        attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", "gen_ai.tool.call.id": "c-1"},
    )
    reply = answer(post_protobuf(client, export_request([root_span(now), chat_span(now), tool]), agent_key))
    assert not reply.HasField("partial_success")

    spans = {stored.span_id: stored for stored in Span.objects.all()}
    assert set(spans) == {ROOT, CHAT, TOOL}
    chat = spans[CHAT]
    assert (chat.operation, chat.provider, chat.response_model) == ("chat", "openai", "gpt-4.1")
    assert (chat.input_tokens, chat.output_tokens, chat.cache_read_tokens) == (1000, 200, 400)
    assert chat.parent_span_id == ROOT and chat.agent_id == agent_key.user.pk
    # Cached tokens at their own price and not again at the input price: by hand,
    # (1000 - 400) x 2.00 + 400 x 0.50 + 200 x 8.00 per million.
    assert chat.cost == (Decimal(600) * 2 + Decimal(400) * Decimal("0.5") + Decimal(200) * 8) / 1_000_000
    assert spans[TOOL].tool_name == "search" and spans[TOOL].tool_call_id == "c-1" and spans[TOOL].cost is None
    assert spans[ROOT].agent_name == "support" and spans[ROOT].user_id == "u-42"
    assert spans[ROOT].attributes == {"service.name": "support-bot"}

    trace = Trace.objects.get()
    assert trace.trace_id == TRACE and trace.root_span_name == "invoke_agent support"
    assert trace.start_time == now and trace.end_time == now + timedelta(milliseconds=2000)
    assert trace.duration_ms == 2000
    assert (trace.span_count, trace.llm_calls, trace.error_count, trace.unpriced_spans) == (3, 1, 0, 0)
    assert (trace.input_tokens, trace.output_tokens, trace.cache_read_tokens) == (1000, 200, 400)
    assert trace.cost == chat.cost and trace.models_used == ["gpt-4.1"]
    assert trace.user_id == "u-42" and trace.day == now.date()


def test_the_same_batch_twice_is_stored_once_and_the_totals_do_not_move(client, agent_key, prices, now):
    message = export_request([root_span(now), chat_span(now)])
    answer(post_protobuf(client, message, agent_key))
    before = Trace.objects.values().get()
    reply = answer(post_protobuf(client, message, agent_key))
    assert not reply.HasField("partial_success")  # a duplicate is no refusal: nothing to retry
    assert Span.objects.count() == 2
    after = Trace.objects.values().get()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


def test_a_batch_repeating_a_span_stores_it_once(client, agent_key, prices, now):
    answer(post_protobuf(client, export_request([chat_span(now), chat_span(now)]), agent_key))
    assert Span.objects.count() == 1
    assert Trace.objects.get().span_count == 1 and Trace.objects.get().input_tokens == 1000


def test_children_before_their_parent_fix_the_root_and_start_when_it_arrives(client, agent_key, prices, now):
    base = now - timedelta(hours=3)
    answer(post_protobuf(client, export_request([chat_span(base, offset_ms=3_600_000 * 3)]), agent_key))
    first = Trace.objects.get()
    assert first.root_span_name == "" and first.start_time == now and first.user_id == ""
    answer(post_protobuf(client, export_request([root_span(base)]), agent_key))
    trace = Trace.objects.get()
    assert trace.root_span_name == "invoke_agent support"
    assert trace.start_time == base
    assert trace.end_time == now + timedelta(milliseconds=500)
    assert trace.duration_ms == timedelta(hours=3, milliseconds=500) / timedelta(milliseconds=1)
    assert trace.span_count == 2 and trace.llm_calls == 1
    assert trace.day == first.day  # filed once, never moved
    assert trace.user_id == "u-42"


def test_an_unknown_model_is_unpriced(client, agent_key, prices, now):
    answer(post_protobuf(client, export_request([root_span(now), chat_span(now, model="my-own-llm")]), agent_key))
    chat = Span.objects.get(span_id=CHAT)
    assert chat.cost is None
    trace = Trace.objects.get()
    assert trace.cost is None and trace.unpriced_spans == 1 and trace.llm_calls == 1
    assert trace.models_used == ["my-own-llm"]


def test_a_glob_price_with_cache_writes_is_computed_by_hand(client, agent_key, prices, now):
    chat = chat_span(
        now,
        model="claude-sonnet-4-5",
        **{
            "gen_ai.provider.name": "anthropic",
            "gen_ai.usage.cache_creation.input_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 300,
        },
    )
    answer(post_protobuf(client, export_request([chat]), agent_key))
    stored = Span.objects.get()
    expected = (
        Decimal(1000 - 300 - 100) * 3 + Decimal(300) * Decimal("0.30") + Decimal(100) * Decimal("3.75") + 200 * 15
    ) / 1_000_000
    assert stored.cost == expected and Trace.objects.get().cost == expected


def test_old_attribute_names_map_like_the_new(client, agent_key, prices, now):
    old = span(
        trace=TRACE,
        span_id=CHAT,
        name="openai.chat",
        start=now,
        attrs={
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4.1",
            "gen_ai.usage.prompt_tokens": 1000,
            "gen_ai.usage.completion_tokens": 200,
            "gen_ai.usage.cache_read_input_tokens": 400,  # OpenLLMetry's name
            "llm.request.type": "chat",
        },
    )
    answer(post_protobuf(client, export_request([old]), agent_key))
    stored = Span.objects.get()
    assert (stored.operation, stored.provider, stored.request_model) == ("chat", "openai", "gpt-4.1")
    assert (stored.input_tokens, stored.output_tokens, stored.cache_read_tokens) == (1000, 200, 400)
    assert stored.cost == Decimal("0.003")
    assert stored.attributes == {"service.name": "support-bot"}


def test_the_new_name_wins_over_the_old_when_both_are_sent(client, agent_key, prices, now):
    both = chat_span(now, **{"gen_ai.system": "azure", "gen_ai.usage.prompt_tokens": 5})
    answer(post_protobuf(client, export_request([both]), agent_key))
    stored = Span.objects.get()
    assert stored.provider == "openai" and stored.input_tokens == 1000
    assert "gen_ai.system" not in stored.attributes


def test_openinference_names_are_mapped(client, agent_key, prices, now):
    llm = span(
        trace=TRACE,
        span_id=CHAT,
        name="ChatCompletion",
        start=now,
        attrs={
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.model_name": "gpt-4.1",
            "llm.token_count.prompt": 1000,
            "llm.token_count.completion": 200,
            "llm.token_count.prompt_details.cache_read": 400,
            "llm.token_count.completion_details.reasoning": 50,
            "session.id": "s-9",
        },
    )
    tool = span(
        trace=TRACE,
        span_id=TOOL,
        name="search",
        start=now,
        attrs={"openinference.span.kind": "TOOL", "tool.name": "search"},
    )
    answer(post_protobuf(client, export_request([llm, tool]), agent_key))
    stored = Span.objects.get(span_id=CHAT)
    assert (stored.operation, stored.provider, stored.response_model) == ("chat", "openai", "gpt-4.1")
    assert (stored.input_tokens, stored.output_tokens, stored.cache_read_tokens, stored.reasoning_tokens) == (
        1000,
        200,
        400,
        50,
    )
    assert stored.user_id == "s-9"  # session.id is the last of TRACE_USER_ATTRIBUTES
    # Reasoning tokens are part of the output count, at the output price when none is set.
    assert stored.cost == Decimal("0.003")
    assert Span.objects.get(span_id=TOOL).operation == "execute_tool"
    assert Span.objects.get(span_id=TOOL).tool_name == "search"


def test_the_user_comes_from_the_configured_order_span_first_then_resource(client, agent_key, settings, now):
    settings.TRACE_USER_ATTRIBUTES = ("enduser.id", "user.id")
    first = span(trace=TRACE, span_id=CHAT, start=now, attrs={"user.id": "u-1", "enduser.id": "e-1"})
    second = span(trace=TRACE, span_id=TOOL, start=now, attrs={})
    message = export_request([first, second], resource={"service.name": "bot", "user.id": "r-1"})
    answer(post_protobuf(client, message, agent_key))
    assert Span.objects.get(span_id=CHAT).user_id == "e-1"
    assert Span.objects.get(span_id=CHAT).attributes == {"service.name": "bot", "user.id": "u-1"}
    assert Span.objects.get(span_id=TOOL).user_id == "r-1"


def test_invalid_spans_are_refused_as_partial_success_and_the_rest_stored(client, agent_key, settings, now):
    settings.TRACE_RETENTION_DAYS = 7
    good = span(trace=TRACE, span_id=ROOT, start=now)
    bad_trace = span(trace="00" * 16, span_id=CHAT, start=now)
    end_first = span(trace=TRACE, span_id=TOOL, start=now, duration_ms=-5)
    too_old = span(trace=TRACE, span_id="1111111111111111", start=now - timedelta(days=8))
    future = span(trace=TRACE, span_id="2222222222222222", start=now + timedelta(hours=1))
    short_id = span(trace=TRACE, span_id="33", start=now)
    reply = answer(
        post_protobuf(client, export_request([good, bad_trace, end_first, too_old, future, short_id]), agent_key)
    )
    assert reply.partial_success.rejected_spans == 5
    message = reply.partial_success.error_message
    assert "span 1: trace_id" in message and "end is before start" in message and "retention" in message
    assert "future" in message and "span 5: span_id" in message
    assert list(Span.objects.values_list("span_id", flat=True)) == [ROOT]
    assert Trace.objects.get().span_count == 1


def test_errors_count_on_the_trace_with_their_type(client, agent_key, now):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan

    event = OtlpSpan.Event(
        name="exception",
        time_unix_nano=0,
        attributes=[KeyValue(key="exception.type", value=AnyValue(string_value="TimeoutError"))],
    )
    failed = span(trace=TRACE, span_id=CHAT, parent=ROOT, start=now, status=2, events=[event])
    typed = span(trace=TRACE, span_id=TOOL, parent=ROOT, start=now, status=2, attrs={"error.type": "rate_limited"})
    answer(post_protobuf(client, export_request([root_span(now), failed, typed]), agent_key))
    assert Span.objects.get(span_id=CHAT).error_type == "TimeoutError"
    assert Span.objects.get(span_id=TOOL).error_type == "rate_limited"
    trace = Trace.objects.get()
    assert trace.status == "error" and trace.error_count == 2


def test_attributes_past_the_cap_are_dropped_and_counted(client, agent_key, settings, now):
    settings.TRACE_ATTRIBUTES_MAX_BYTES = 512
    attrs = {f"app.field_{number:02d}": "x" * 40 for number in range(30)}
    answer(post_protobuf(client, export_request([span(trace=TRACE, span_id=CHAT, start=now, attrs=attrs)]), agent_key))
    stored = Span.objects.get().attributes

    assert len(json.dumps(stored, separators=(",", ":")).encode()) <= 512
    kept = [key for key in stored if key != "agentops.dropped_attributes"]
    assert "service.name" in kept and 1 < len(kept) < 31
    assert stored["agentops.dropped_attributes"] == 31 - len(kept)  # 30 + service.name


def test_the_experiment_link_is_asked_once_per_batch_with_one_query_per_span(client, agent_key, now, monkeypatch):
    # traces.linking answers (another part's implementation); here a stand-in records what ingest asks.
    from traces import ingest
    from traces.linking import Link, LinkQuery

    calls: list[list[LinkQuery]] = []

    def links(queries):
        calls.append(list(queries))
        return [
            Link(experiment_id=7, variant_id=70, prompt_version_id=700) if q.experiment_key else None for q in queries
        ]

    monkeypatch.setattr(ingest, "experiment_links", links)
    linked = chat_span(
        now,
        **{
            "user.id": "u-9",
            "agentops.experiment": "tone",
            "agentops.variant": "warm",
            "agentops.prompt_version": 3,
            "agentops.prompt": "support",
        },
    )
    answer(post_protobuf(client, export_request([root_span(now), linked]), agent_key))
    assert len(calls) == 1 and len(calls[0]) == 2
    assert calls[0][0] == LinkQuery(user_id="u-42")
    assert calls[0][1] == LinkQuery(
        user_id="u-9", prompt_type="support", experiment_key="tone", variant_key="warm", prompt_version=3
    )
    stored = Span.objects.get(span_id=CHAT)
    assert (stored.experiment_id, stored.variant_id, stored.prompt_version_id) == (7, 70, 700)
    assert stored.prompt_type == "support" and "agentops.experiment" not in stored.attributes
    assert Span.objects.get(span_id=ROOT).experiment_id is None
    trace = Trace.objects.get()
    assert (trace.experiment_id, trace.variant_id) == (7, 70)


def test_a_batch_mixing_stored_and_new_spans_adds_only_the_new_ones(client, agent_key, prices, now):
    answer(post_protobuf(client, export_request([root_span(now), chat_span(now)]), agent_key))
    second_chat = chat_span(now, span_id=TOOL, offset_ms=700)
    # The stored spans make the direct COPY fail; the staged path stores the new one and names it.
    reply = answer(post_protobuf(client, export_request([root_span(now), chat_span(now), second_chat]), agent_key))
    assert not reply.HasField("partial_success")
    assert Span.objects.count() == 3
    trace = Trace.objects.get()
    assert (trace.span_count, trace.llm_calls, trace.input_tokens) == (3, 2, 2000)
    assert trace.cost == 2 * Span.objects.get(span_id=CHAT).cost
    assert trace.end_time == now + timedelta(milliseconds=2000)
