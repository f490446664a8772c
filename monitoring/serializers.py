"""API shapes. Batches are validated by ``monitoring.parsing`` (fast); these describe the schema."""

from __future__ import annotations

from datetime import datetime

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from monitoring.models import AgentRun


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
    agent = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9 ._:/@+\-]{0,99}$",
        required=False,
        help_text="The agent's name; an agent (API key) may only give its own, which is also the default.",
    )
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
