"""The documented shape of ``GET /api/v1/experiments/{key}/stats`` (for the OpenAPI schema)."""

from __future__ import annotations

from rest_framework import serializers


class SrmSerializer(serializers.Serializer):
    p_value = serializers.FloatField(allow_null=True, help_text="Pearson chi-square p-value of exposures vs weights")
    ok = serializers.BooleanField(help_text="False when p < 0.001 with at least 8 exposures per variant")


class MetricSummarySerializer(serializers.Serializer):
    n = serializers.IntegerField(
        help_text="users with a value for the metric (for cost, tokens and LLM calls per user: every exposed user)"
    )
    mean = serializers.FloatField(help_text="mean of per-user values")
    std = serializers.FloatField(allow_null=True, help_text="standard deviation of per-user values, ddof = 1")


class VariantStatsSerializer(serializers.Serializer):
    key = serializers.CharField()
    is_control = serializers.BooleanField()
    exposures = serializers.IntegerField()
    results = serializers.IntegerField()
    metrics = serializers.DictField(child=MetricSummarySerializer(), help_text="metrics without data are omitted")


class ComparisonSerializer(serializers.Serializer):
    variant = serializers.CharField()
    metric = serializers.CharField()
    diff = serializers.FloatField(help_text="treatment mean - control mean")
    ci_low = serializers.FloatField()
    ci_high = serializers.FloatField()
    lift = serializers.FloatField(allow_null=True, help_text="diff / control mean, a fraction (0.05 = 5%)")
    lift_ci_low = serializers.FloatField(allow_null=True)
    lift_ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(help_text="two-sided Welch (or always-valid when sequential)")
    p_value_adjusted = serializers.FloatField(allow_null=True, help_text="Holm, with more than one treatment")
    chance_to_win = serializers.FloatField()
    expected_loss = serializers.FloatField()
    significant = serializers.BooleanField()


class PowerSerializer(serializers.Serializer):
    metric = serializers.CharField()
    mde_abs = serializers.FloatField(allow_null=True)
    mde_rel = serializers.FloatField(allow_null=True)
    users_needed = serializers.IntegerField(allow_null=True, help_text="per variant, for the target MDE")


class DecisionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["ship", "keep_running", "no_difference", "invalid"])
    variant = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    state = serializers.ChoiceField(
        choices=["ship", "keep_control", "no_difference", "keep_running", "collecting_data", "srm"],
        help_text="the action refined for people: ship with variant = the control is keep_control; invalid is "
        "collecting_data (too few users yet) or srm (a broken setup)",
    )
    headline = serializers.CharField(
        help_text="one sentence to show first, e.g. 'Keep control: warm is worse on tokens (+4.0 %)'"
    )
    tone = serializers.ChoiceField(
        choices=["good", "warn", "neutral", "bad"], help_text="how to colour it: bad only for a sample ratio mismatch"
    )


class ExperimentStatsSerializer(serializers.Serializer):
    experiment = serializers.CharField()
    status = serializers.CharField()
    computed_at = serializers.DateTimeField()
    data_through = serializers.DateTimeField(
        allow_null=True, help_text="every result recorded by this instant is counted (the moment of the query)"
    )
    rolled_through = serializers.DateTimeField(
        allow_null=True,
        help_text="source=rollup: the rollup's watermark; results after it are read raw and combined per user. "
        "Exposures (the SRM check) and trace metrics are counted through it. Null for source=raw.",
    )
    srm = SrmSerializer()
    variants = VariantStatsSerializer(many=True)
    comparisons = ComparisonSerializer(many=True)
    power = PowerSerializer()
    decision = DecisionSerializer()
