"""API shapes. Batches are validated by ``monitoring.parsing`` (fast); these describe the schema.

The row serializers accept exactly what the parser accepts (``tests/agentplatform/test_schema_parity.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from agentplatform.query import QueryDateTimeField, QueryParameters
from agentplatform.strict_fields import (
    AwareDateTimeField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
)
from monitoring import parsing
from monitoring.models import AgentRun

# Days a summary window may span at most (the hour retention).
MAX_SUMMARY_DAYS = 90


class MetricsOperationSerializer(serializers.Serializer):
    operation = StrictCharField(
        validators=[RegexValidator(parsing.OPERATION_RE)], help_text="1-200 printable characters, no '|'."
    )
    duration_ms = StrictFloatField(min_value=0, max_value=parsing.MAX_VALUE_MS)
    success = StrictBooleanField()
    occurred_at = AwareDateTimeField(retention_days="MONITORING_MINUTE_RETENTION_DAYS")
    event_id = StrictCharField(
        required=False,
        allow_null=True,
        validators=[RegexValidator(parsing.ID_RE)],
        help_text="Idempotency key, the caller's own: one the caller sent before counts once.",
    )


class MetricsOperationBatchSerializer(serializers.Serializer):
    operations = MetricsOperationSerializer(many=True, min_length=1, max_length=5000)


_NAME = RegexValidator(parsing.NAME_RE)


class MetricsAgentRunSerializer(serializers.Serializer):
    run_id = StrictCharField(validators=[RegexValidator(parsing.ID_RE)], help_text="Unique per submitter.")
    agent = StrictCharField(
        required=False,
        allow_null=True,
        validators=[_NAME],
        help_text="The agent's name; an agent (API key) may only give its own, which is also the default.",
    )
    workflow = StrictCharField(validators=[_NAME])
    steps = StrictIntegerField(min_value=0, max_value=parsing.MAX_COUNT)
    retry_count = StrictIntegerField(min_value=0, max_value=parsing.MAX_COUNT)
    no_progress_count = StrictIntegerField(min_value=0, max_value=parsing.MAX_COUNT)
    critic_score = StrictFloatField(min_value=0, max_value=1e9, allow_null=True, required=False)
    tokens = StrictIntegerField(min_value=0, max_value=parsing.MAX_TOKENS)
    outcome = StrictChoiceField(choices=AgentRun.Outcome.choices)
    started_at = AwareDateTimeField()
    finished_at = AwareDateTimeField(retention_days="MONITORING_HOUR_RETENTION_DAYS")

    def validate(self, attrs):
        if attrs["finished_at"] < attrs["started_at"]:
            raise serializers.ValidationError({"finished_at": ["Must not be before started_at."]})
        return attrs


class MetricsAgentRunBatchSerializer(serializers.Serializer):
    runs = MetricsAgentRunSerializer(many=True, min_length=1, max_length=1000)


class MetricsSummaryQuerySerializer(QueryParameters):
    operation = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="One operation; omit for all of them."
    )
    since = QueryDateTimeField(require_timezone=True, required=False, help_text="Window start (default: an hour ago).")
    until = QueryDateTimeField(require_timezone=True, required=False, help_text="Window end, exclusive (default: now).")

    def validate(self, attrs):
        until = attrs.get("until") or timezone.now()
        since = attrs.get("since") or until - timedelta(hours=1)
        if since >= until:
            raise serializers.ValidationError({"since": ["'since' must be before 'until'."]})
        if until - since > timedelta(days=MAX_SUMMARY_DAYS):
            raise serializers.ValidationError({"since": [f"The window may span at most {MAX_SUMMARY_DAYS} days."]})
        return {"operation": attrs.get("operation") or None, "since": since, "until": until}


class MetricsOperationSummarySerializer(serializers.Serializer):
    operation = serializers.CharField()
    count = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField()
    p50 = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    p95 = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    p99 = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    mean_ms = serializers.FloatField(allow_null=True)
    relative_error = serializers.FloatField(help_text="Bound on the relative error of p50/p95/p99.")
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class MetricsSummarySerializer(MetricsOperationSummarySerializer):
    """One operation's summary, or (operation omitted) ``{since, until, relative_error, operations}``."""

    operations = MetricsOperationSummarySerializer(many=True, required=False)


class MetricsAllOperationsSummarySerializer(serializers.Serializer):
    """The summary of every operation in the window (``operation`` omitted)."""

    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    relative_error = serializers.FloatField(help_text="Bound on the relative error of p50/p95/p99.")
    operations = MetricsOperationSummarySerializer(many=True)


# What GET /summary answers: one of the two shapes above, told apart by ``operations``.
SUMMARY_RESPONSE = PolymorphicProxySerializer(
    component_name="MetricsSummaryResponse",
    serializers=[MetricsOperationSummarySerializer, MetricsAllOperationsSummarySerializer],
    resource_type_field_name=None,
)


def summary_json(summary: dict) -> dict:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in summary.items()}
