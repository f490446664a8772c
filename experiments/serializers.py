"""API shapes of experiments: per endpoint, an input serializer whose ``validated_data`` is the
service's input, and an output serializer.

The experiment input serializers check the body against ``experiments.validation`` — the rules the
admin's form checks too, so both surfaces name every broken rule at once in the same words, keyed
``field`` or ``variants[i].field`` — then their declared fields type it (a ``Decimal`` percentage,
floats, booleans, defaults for null) for the service, which converts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from agentplatform.query import MAX_OFFSET, QueryParameters
from agentplatform.strict_fields import (
    AwareDateTimeField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictInputSerializer,
    StrictIntegerField,
)
from experiments.metric_catalogue import METRICS
from experiments.models import Experiment, ExperimentStatus
from experiments.validation import VARIABLES_MAX_ITEMS, experiment_validate, variables_problem
from prompts.models import LABEL_HELP, LABEL_PATTERN


class VariantInputSerializer(StrictInputSerializer):
    key = serializers.CharField()
    name = serializers.CharField(default="", allow_blank=True, allow_null=True, trim_whitespace=False)
    prompt_version = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="A version number of the experiment's prompt (the registry's prompt keyed by target_prompt_type).",
    )
    content = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Inline text instead of prompt_version: stored as a version of the prompt (an identical one is "
        "reused). The control may give neither: it gets the version under production when the experiment starts.",
    )
    weight = serializers.FloatField(default=1.0, help_text="> 0; normalised over the experiment's variants.")
    is_control = serializers.BooleanField(default=False, allow_null=True)

    def validate_name(self, value: str | None) -> str:
        return value or ""

    def validate_is_control(self, value: bool | None) -> bool:
        return bool(value)


class ExperimentCreateInputSerializer(serializers.Serializer):
    """``POST experiments/``: ``{key, name, hypothesis, target_prompt_type, primary_metric,
    guardrail_metrics, user_percentage, sequential, target_mde, variants}``; other fields are refused."""

    key = serializers.SlugField()
    name = serializers.CharField(trim_whitespace=False)
    hypothesis = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    target_prompt_type = serializers.CharField()
    primary_metric = serializers.ChoiceField(choices=list(METRICS))
    guardrail_metrics = serializers.ListField(
        child=serializers.ChoiceField(choices=list(METRICS)),
        required=False,
        allow_null=True,
        help_text=f"Metric names, any of: {', '.join(METRICS)}.",
    )
    user_percentage = serializers.DecimalField(
        max_digits=7, decimal_places=4, help_text="Percent of the prompt type's users: 0 < p <= 100."
    )
    sequential = serializers.BooleanField(required=False, allow_null=True)
    target_mde = serializers.FloatField(required=False, allow_null=True, help_text="Relative (0.05 = 5%).")
    variants = VariantInputSerializer(many=True)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        experiment_validate(data, instance=self.instance)
        return super().to_internal_value(data)

    # null means "the default", as omitting the field does.

    def validate_hypothesis(self, value: str | None) -> str:
        return value or ""

    def validate_guardrail_metrics(self, value: list[str] | None) -> list[str]:
        return value or []

    def validate_sequential(self, value: bool | None) -> bool:
        return bool(value)

    def validate_target_mde(self, value: float | None) -> float:
        return Experiment._meta.get_field("target_mde").default if value is None else value


class ExperimentUpdateInputSerializer(ExperimentCreateInputSerializer):
    """``PATCH|PUT experiments/{key}/`` (``partial=True``): any of the create fields, checked against
    the experiment (``instance``) they change; the key cannot change, so it is not passed on."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.pop("key", None)
        return attrs


class IsoDateTimeField(serializers.DateTimeField):
    """A date-time as ``datetime.isoformat()`` gives it (``+00:00``, where DRF writes ``Z``), as these
    endpoints have always answered."""

    def to_representation(self, value):
        return value.isoformat()


class VariantOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    prompt_version = serializers.IntegerField(
        source="prompt_version.version", allow_null=True, help_text="Null for a draft's control until it starts."
    )
    content = serializers.CharField(help_text="The prompt version's text.")
    weight = serializers.FloatField()
    is_control = serializers.BooleanField()


class NamespaceOutputSerializer(serializers.Serializer):
    name = serializers.CharField(source="target_prompt_type", help_text="The prompt type.")
    start = serializers.FloatField(source="namespace_start", allow_null=True)
    end = serializers.FloatField(source="namespace_end", allow_null=True)


class ExperimentOutputSerializer(serializers.Serializer):
    """An experiment: the input fields, then its state (``status``, ``seed``, ``namespace``, times)."""

    key = serializers.CharField()
    name = serializers.CharField()
    hypothesis = serializers.CharField()
    target_prompt_type = serializers.CharField()
    primary_metric = serializers.ChoiceField(choices=list(METRICS))
    guardrail_metrics = serializers.ListField(child=serializers.ChoiceField(choices=list(METRICS)))
    user_percentage = serializers.FloatField()
    sequential = serializers.BooleanField()
    target_mde = serializers.FloatField()
    # In GrowthBook's order; ``variants.all()`` keeps the model's ordering (and a prefetch).
    variants = VariantOutputSerializer(many=True)
    status = serializers.ChoiceField(choices=ExperimentStatus.choices)
    seed = serializers.CharField(source="hash_seed")
    namespace = NamespaceOutputSerializer(source="*")
    started_at = IsoDateTimeField(allow_null=True)
    stopped_at = IsoDateTimeField(allow_null=True)
    created_at = IsoDateTimeField()
    updated_at = IsoDateTimeField()


class TemplateVariablesField(serializers.DictField):
    """``variables`` of a resolve request: ``experiments.validation.variables_problem`` is the rule."""

    def to_internal_value(self, data):
        problem = variables_problem(data)
        if problem:
            raise serializers.ValidationError(problem)
        return dict(data)


class ResolveRequestSerializer(serializers.Serializer):
    """For the schema: ``experiments.validation.resolve_request_errors`` validates (parity-tested)."""

    user_id = StrictCharField(max_length=255, help_text="The creator id the agent acts for.")
    prompt_type = StrictCharField(max_length=100)
    default_prompt = StrictCharField(required=False, allow_null=True, allow_blank=True)
    label = StrictCharField(
        required=False,
        allow_null=True,
        max_length=50,
        validators=[RegexValidator(LABEL_PATTERN, LABEL_HELP)],
        help_text="The registry label served outside experiments (default production; latest is the newest version).",
    )
    variables = TemplateVariablesField(
        required=False,
        allow_null=True,
        help_text=f"Fills the prompt's {{{{name}}}} placeholders; the answer then has 'compiled'. At most "
        f"{VARIABLES_MAX_ITEMS} names; values are strings, numbers, booleans or null.",
    )


class ResolvedPromptSerializer(serializers.Serializer):
    key = serializers.CharField()
    version = serializers.IntegerField(allow_null=True)
    label = serializers.CharField(allow_null=True, help_text="Null when an experiment's variant chose the version.")
    content = serializers.CharField()
    config = serializers.DictField()


class ResolveResponseSerializer(serializers.Serializer):
    content = serializers.CharField(allow_null=True)
    in_experiment = serializers.BooleanField()
    experiment = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    reason = serializers.ChoiceField(
        choices=["assigned", "no_running_experiment", "outside_experiments", "experiment_paused", "empty_user_id"]
    )
    source = serializers.ChoiceField(
        choices=["experiment", "label", "default"],
        help_text="Where content came from: the user's experiment variant, the label's version, or default_prompt.",
    )
    prompt = ResolvedPromptSerializer(allow_null=True, help_text="Null when the content is default_prompt.")
    compiled = serializers.CharField(
        required=False, allow_null=True, help_text="Only when variables were sent: content with placeholders filled."
    )


class PromoteInputSerializer(StrictInputSerializer):
    """``POST experiments/{key}/promote``."""

    variant = serializers.CharField(max_length=100, help_text="The variant whose prompt version goes to production.")


class PromotionOutputSerializer(serializers.Serializer):
    experiment = ExperimentOutputSerializer()
    variant = serializers.CharField()
    prompt = serializers.CharField(help_text="The prompt's key.")
    label = serializers.CharField()
    from_version = serializers.IntegerField(allow_null=True)
    version = serializers.IntegerField()


class ResultRowSerializer(serializers.Serializer):
    """One result row, for the schema: ``experiments.services.results`` validates; the parity test keeps them equal.

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


class ExposureRowSerializer(serializers.Serializer):
    """One reported exposure, for the schema: ``experiments.services.reported_exposures`` validates;
    the parity test keeps them equal. (Whether the experiment runs and the variant is the user's is
    checked against the live experiment, not here.)"""

    experiment = StrictCharField(max_length=100, help_text="The running experiment's key.")
    variant = StrictCharField(max_length=100, help_text="The variant the client assigned (the server's own bucketing).")
    user_id = StrictCharField(max_length=255)
    occurred_at = AwareDateTimeField(
        required=False, allow_null=True, help_text="When the client served the variant first. Default: now."
    )


class ExposuresRequestSerializer(serializers.Serializer):
    exposures = ExposureRowSerializer(many=True)


# The list's page size: default and ceiling (LimitOffsetPagination reads the same parameters).
EXPERIMENT_PAGE_SIZE = 100
EXPERIMENT_MAX_PAGE_SIZE = 500


class ExperimentListQuerySerializer(QueryParameters):
    status = serializers.ChoiceField(choices=ExperimentStatus.choices, required=False, allow_blank=True)
    prompt_type = serializers.CharField(required=False, allow_blank=True, max_length=100)
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=EXPERIMENT_MAX_PAGE_SIZE,
        help_text=f"Page size (default {EXPERIMENT_PAGE_SIZE}, at most {EXPERIMENT_MAX_PAGE_SIZE}).",
    )
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET)
