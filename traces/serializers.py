"""Shapes of the traces read API and the model price API: query parameters, bodies, answers."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework import serializers

from agentplatform.query import MAX_OFFSET, QueryDateTimeField, QueryParameters
from agentplatform.strict_fields import StrictCharField, StrictInputSerializer
from traces.models import ModelPrice, Span, SpanStatus, Trace
from traces.selectors import SpanNode, TraceFilters
from traces.services import PRICE_FIELDS

TRACE_ID_RE = r"^[0-9a-f]{32}$"
SLUG_RE = r"^[-a-zA-Z0-9_]+$"
# A model name or glob: what providers' model ids are made of, plus the glob's * ? [ ] (and ! inside
# brackets). No spaces: a pasted name with a trailing blank would silently match nothing.
MODEL_PATTERN_RE = re.compile(r"^[A-Za-z0-9._:/@+*?\[\]!-]+$")
PROVIDER_RE = re.compile(r"^[a-z0-9._-]*$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


# --- traces ----------------------------------------------------------------------------------------


class TraceQuerySerializer(QueryParameters):
    agent = serializers.CharField(required=False, max_length=150, help_text="The exporting agent's username.")
    user = serializers.CharField(required=False, max_length=200, help_text="The end user's id (user.id, …).")
    model = serializers.CharField(required=False, max_length=200, help_text="A model the trace called.")
    status = serializers.ChoiceField(SpanStatus.choices, required=False)
    experiment = serializers.RegexField(SLUG_RE, required=False, max_length=100, help_text="Experiment key.")
    variant = serializers.RegexField(
        SLUG_RE, required=False, max_length=100, help_text="Variant key (with experiment)."
    )
    since = QueryDateTimeField(required=False, require_timezone=True, help_text="Start at or after (inclusive).")
    until = QueryDateTimeField(required=False, require_timezone=True, help_text="Start before (exclusive).")
    trace_id = serializers.RegexField(TRACE_ID_RE, required=False, max_length=32, help_text="32 lowercase hex digits.")
    cursor = serializers.CharField(required=False, max_length=200)
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_OFFSET, help_text="Capped at TRACE_MAX_PAGE_SIZE."
    )

    def validate(self, attrs):
        if attrs.get("variant") and not attrs.get("experiment"):
            raise serializers.ValidationError(
                {"variant": ["Name the experiment too: variant keys are per experiment."]}
            )
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        return attrs

    def filters(self) -> TraceFilters:
        data = self.validated_data
        return TraceFilters(
            agent=data.get("agent"),
            user_id=data.get("user"),
            model=data.get("model"),
            status=data.get("status"),
            experiment=data.get("experiment"),
            variant=data.get("variant"),
            since=data.get("since"),
            until=data.get("until"),
            trace_id=data.get("trace_id"),
        )

    def limit(self) -> int:
        return min(self.validated_data.get("page_size") or settings.TRACE_PAGE_SIZE, settings.TRACE_MAX_PAGE_SIZE)


class TraceDetailQuerySerializer(QueryParameters):
    agent = serializers.CharField(
        required=False, max_length=150, help_text="The agent's username, when two agents used the same trace id."
    )


def _decimal(value) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def trace_to_dict(trace: Trace, *, agent_names: dict[int, str]) -> dict[str, Any]:
    return {
        "trace_id": trace.trace_id,
        "agent": agent_names.get(trace.agent_id, ""),
        "user_id": trace.user_id,
        "root_span_name": trace.root_span_name,
        "start_time": trace.start_time,
        "end_time": trace.end_time,
        "duration_ms": trace.duration_ms,
        "status": trace.status,
        "span_count": trace.span_count,
        "error_count": trace.error_count,
        "llm_calls": trace.llm_calls,
        "unpriced_spans": trace.unpriced_spans,
        "models": trace.models_used,
        "input_tokens": trace.input_tokens,
        "output_tokens": trace.output_tokens,
        "cache_read_tokens": trace.cache_read_tokens,
        "cache_write_tokens": trace.cache_write_tokens,
        "reasoning_tokens": trace.reasoning_tokens,
        "cost": _decimal(trace.cost),
        "experiment_id": trace.experiment_id,
        "variant_id": trace.variant_id,
    }


def span_to_dict(node: SpanNode) -> dict[str, Any]:
    span: Span = node.span
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id or None,
        "depth": node.depth,
        "name": span.name,
        "kind": span.kind,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "offset_ms": round(node.offset_ms, 3),
        "duration_ms": span.duration_ms,
        "status": span.status,
        "status_message": span.status_message,
        "operation": span.operation,
        "provider": span.provider,
        "request_model": span.request_model,
        "response_model": span.response_model,
        "tool_name": span.tool_name,
        "error_type": span.error_type,
        "input_tokens": span.input_tokens,
        "output_tokens": span.output_tokens,
        "cache_read_tokens": span.cache_read_tokens,
        "cache_write_tokens": span.cache_write_tokens,
        "reasoning_tokens": span.reasoning_tokens,
        "cost": _decimal(span.cost),
        "attributes": span.attributes,
        "content": span.content,
    }


class TraceOutSerializer(serializers.Serializer):
    trace_id = serializers.CharField()
    agent = serializers.CharField()
    user_id = serializers.CharField()
    root_span_name = serializers.CharField()
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    duration_ms = serializers.FloatField()
    status = serializers.ChoiceField(SpanStatus.choices)
    span_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    llm_calls = serializers.IntegerField()
    unpriced_spans = serializers.IntegerField()
    models = serializers.ListField(child=serializers.CharField())
    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)
    cache_read_tokens = serializers.IntegerField(allow_null=True)
    cache_write_tokens = serializers.IntegerField(allow_null=True)
    reasoning_tokens = serializers.IntegerField(allow_null=True)
    cost = serializers.CharField(allow_null=True, help_text="Decimal string, in the prices' currency.")
    experiment_id = serializers.IntegerField(allow_null=True)
    variant_id = serializers.IntegerField(allow_null=True)


class TracePageSerializer(serializers.Serializer):
    results = TraceOutSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class SpanOutSerializer(serializers.Serializer):
    span_id = serializers.CharField()
    parent_span_id = serializers.CharField(allow_null=True)
    depth = serializers.IntegerField(help_text="0 for a root; the list is in tree order.")
    name = serializers.CharField()
    kind = serializers.CharField()
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    offset_ms = serializers.FloatField(help_text="Milliseconds from the trace's start.")
    duration_ms = serializers.FloatField()
    status = serializers.CharField()
    status_message = serializers.CharField()
    operation = serializers.CharField()
    provider = serializers.CharField()
    request_model = serializers.CharField()
    response_model = serializers.CharField()
    tool_name = serializers.CharField()
    error_type = serializers.CharField()
    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)
    cache_read_tokens = serializers.IntegerField(allow_null=True)
    cache_write_tokens = serializers.IntegerField(allow_null=True)
    reasoning_tokens = serializers.IntegerField(allow_null=True)
    cost = serializers.CharField(allow_null=True)
    attributes = serializers.DictField()
    content = serializers.DictField(allow_null=True)


class TraceDetailSerializer(TraceOutSerializer):
    spans = SpanOutSerializer(many=True)
    spans_truncated = serializers.BooleanField(
        help_text="More spans than TRACE_MAX_SPANS_SHOWN: the first ones by start."
    )


# --- model prices ------------------------------------------------------------------------------------


def model_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable model name or glob (None when it is)."""
    if not MODEL_PATTERN_RE.match(pattern):
        return "Letters, digits and . _ : / @ + - only, with * ? [...] as glob wildcards; no spaces."
    depth = 0
    for index, char in enumerate(pattern):
        if char == "[":
            if depth:
                return "Brackets do not nest."
            depth = 1
            if pattern[index + 1 : index + 2] in ("]", ""):
                return "A [...] set names at least one character."
        elif char == "]":
            if not depth:
                return "A ] without its [."
            depth = 0
    if depth:
        return "A [ without its ]."
    if pattern.strip("*?") == "":
        return "A pattern matching every model prices unknown models by guess; name at least part of the model."
    return None


def _price_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=14, decimal_places=6, min_value=0, **kwargs)


class ModelPriceInSerializer(StrictInputSerializer):
    provider = StrictCharField(
        required=False, allow_blank=True, max_length=64, help_text="gen_ai.provider.name; blank matches any."
    )
    model = StrictCharField(max_length=200, help_text="Exact model name or a glob such as gpt-4.1*.")
    input_per_million = _price_field()
    cached_input_per_million = _price_field(required=False, allow_null=True)
    cache_write_per_million = _price_field(required=False, allow_null=True)
    output_per_million = _price_field()
    reasoning_per_million = _price_field(required=False, allow_null=True)
    currency = StrictCharField(required=False, max_length=3, help_text="ISO 4217, e.g. USD.")
    valid_from = QueryDateTimeField(require_timezone=True, help_text="ISO 8601 with a time zone.")
    note = StrictCharField(required=False, allow_blank=True, max_length=300)

    def validate_provider(self, value: str) -> str:
        if not PROVIDER_RE.match(value):
            raise serializers.ValidationError("Lowercase letters, digits, '.', '_' and '-' (as gen_ai.provider.name).")
        return value

    def validate_model(self, value: str) -> str:
        problem = model_pattern_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_currency(self, value: str) -> str:
        if not CURRENCY_RE.match(value):
            raise serializers.ValidationError("Three capital letters (ISO 4217), e.g. USD.")
        return value


class ModelPriceOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelPrice
        fields = ["id", *PRICE_FIELDS, "created_at", "updated_at"]  # the fields the services write
