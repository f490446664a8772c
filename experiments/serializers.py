"""API shapes of experiments. Input validation is ``experiments.validation`` (shared with the
admin), so the serializer declares fields for the schema and output, and delegates the rules."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agentplatform.strict_fields import (
    AwareDateTimeField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
)
from experiments.metrics import METRICS
from experiments.models import Experiment, ExperimentStatus
from experiments.validation import experiment_validate

INPUT_FIELDS = (
    "key",
    "name",
    "hypothesis",
    "target_prompt_type",
    "primary_metric",
    "guardrail_metrics",
    "user_percentage",
    "sequential",
    "target_mde",
    "variants",
)


class VariantSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True)
    content = serializers.CharField()
    weight = serializers.FloatField(help_text="> 0; normalised over the experiment's variants.")
    is_control = serializers.BooleanField()


class NamespaceSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The prompt type.")
    start = serializers.FloatField(allow_null=True)
    end = serializers.FloatField(allow_null=True)


class ExperimentSerializer(serializers.Serializer):
    """``{key, name, hypothesis, target_prompt_type, primary_metric, guardrail_metrics,
    user_percentage, sequential, target_mde, variants}``; the detail adds status, seed, namespace,
    started_at and stopped_at."""

    key = serializers.SlugField()
    name = serializers.CharField()
    hypothesis = serializers.CharField(required=False, allow_blank=True)
    target_prompt_type = serializers.CharField()
    primary_metric = serializers.ChoiceField(choices=list(METRICS))
    guardrail_metrics = serializers.ListField(
        child=serializers.CharField(), required=False, help_text=f"Metric names, any of: {', '.join(METRICS)}."
    )
    user_percentage = serializers.FloatField(help_text="Percent of the prompt type's users: 0 < p <= 100.")
    sequential = serializers.BooleanField(required=False)
    target_mde = serializers.FloatField(required=False, help_text="Relative (0.05 = 5%).")
    variants = VariantSerializer(many=True)
    status = serializers.ChoiceField(choices=ExperimentStatus.choices, read_only=True)
    seed = serializers.CharField(read_only=True)
    namespace = NamespaceSerializer(read_only=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    stopped_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
        unknown = sorted(set(data) - set(INPUT_FIELDS))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        experiment_validate(data, instance=self.instance)
        return dict(data)

    def to_representation(self, experiment: Experiment) -> dict[str, Any]:
        return experiment_representation(experiment)


def experiment_representation(experiment: Experiment) -> dict[str, Any]:
    def number(value):
        return None if value is None else float(value)

    return {
        "key": experiment.key,
        "name": experiment.name,
        "hypothesis": experiment.hypothesis,
        "target_prompt_type": experiment.target_prompt_type,
        "primary_metric": experiment.primary_metric,
        "guardrail_metrics": list(experiment.guardrail_metrics or []),
        "user_percentage": float(experiment.user_percentage),
        "sequential": experiment.sequential,
        "target_mde": experiment.target_mde,
        "variants": [
            {"key": v.key, "name": v.name, "content": v.content, "weight": v.weight, "is_control": v.is_control}
            for v in sorted(experiment.variants.all(), key=lambda v: (v.position, v.id))
        ],
        "status": experiment.status,
        "seed": experiment.hash_seed,
        "namespace": {
            "name": experiment.target_prompt_type,
            "start": number(experiment.namespace_start),
            "end": number(experiment.namespace_end),
        },
        "started_at": experiment.started_at.isoformat() if experiment.started_at else None,
        "stopped_at": experiment.stopped_at.isoformat() if experiment.stopped_at else None,
        "created_at": experiment.created_at.isoformat() if experiment.created_at else None,
        "updated_at": experiment.updated_at.isoformat() if experiment.updated_at else None,
    }


class ResolveRequestSerializer(serializers.Serializer):
    """For the schema: ``experiments.validation.resolve_request_errors`` validates (parity-tested)."""

    user_id = StrictCharField(max_length=255, help_text="The creator id the agent acts for.")
    prompt_type = StrictCharField(max_length=100)
    default_prompt = StrictCharField(required=False, allow_null=True, allow_blank=True)


class ResolveResponseSerializer(serializers.Serializer):
    content = serializers.CharField(allow_null=True)
    in_experiment = serializers.BooleanField()
    experiment = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    reason = serializers.ChoiceField(
        choices=["assigned", "no_running_experiment", "outside_experiments", "experiment_paused", "empty_user_id"]
    )


class ResultRowSerializer(serializers.Serializer):
    """One result row, for the schema: ``experiments.results`` validates; the parity test keeps them equal.

    (Whether the variant exists and is the user's is checked against the experiment, not here.)
    """

    event_id = StrictCharField(max_length=128)
    user_id = StrictCharField(max_length=255)
    variant = StrictCharField(max_length=100)
    occurred_at = AwareDateTimeField(required=False, allow_null=True, help_text="Default: now.")
    success = StrictBooleanField(required=False, allow_null=True)
    response_time_ms = StrictFloatField(required=False, allow_null=True, min_value=0)
    tokens = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=2**31 - 1)
    quality_score = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    user_feedback = StrictChoiceField(choices=[-1, 0, 1], required=False, allow_null=True)
    model = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=200)


class ResultsRequestSerializer(serializers.Serializer):
    results = ResultRowSerializer(many=True)
