"""API shapes. Batches are validated by ``monitoring.parsing`` (fast); these describe the schema."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from agentplatform.query import QueryDateTimeField, QueryParameters
from monitoring.models import AgentRun

# Days a summary window may span at most (the hour retention).
MAX_SUMMARY_DAYS = 90


class MetricsOperationSerializer(serializers.Serializer):
    operation = serializers.CharField(max_length=200)
    duration_ms = serializers.FloatField(min_value=0)
    success = serializers.BooleanField()
    occurred_at = serializers.DateTimeField()
    event_id = serializers.CharField(max_length=100, required=False)


class MetricsOperationBatchSerializer(serializers.Serializer):
    operations = MetricsOperationSerializer(many=True, min_length=1, max_length=5000)


class MetricsAgentRunSerializer(serializers.Serializer):
    run_id = serializers.CharField(max_length=100)
    agent = serializers.CharField(max_length=100)
    workflow = serializers.CharField(max_length=100)
    steps = serializers.IntegerField(min_value=0)
    retry_count = serializers.IntegerField(min_value=0)
    no_progress_count = serializers.IntegerField(min_value=0)
    critic_score = serializers.FloatField(min_value=0, allow_null=True, required=False)
    tokens = serializers.IntegerField(min_value=0)
    outcome = serializers.ChoiceField(choices=AgentRun.Outcome.choices)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()


class MetricsAgentRunBatchSerializer(serializers.Serializer):
    runs = MetricsAgentRunSerializer(many=True, min_length=1, max_length=1000)


class MetricsRowErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField()
    code = serializers.ChoiceField(choices=["required", "invalid", "out_of_range"])
    message = serializers.CharField()


class MetricsIngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = MetricsRowErrorSerializer(many=True)


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
