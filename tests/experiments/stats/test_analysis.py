"""The assembled analysis on fixed reference data sets: numbers against scipy, and the decision."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from experiments.stats.analysis import AnalysisSettings, experiment_analyse

from . import datasets


def _analyse(data: datasets.DataSet, **settings) -> dict:
    return experiment_analyse(
        variants=data.aggregates(),
        primary_metric=data.primary_metric,
        guardrail_metrics=data.guardrail_metrics,
        higher_is_better=datasets.HIGHER_IS_BETTER,
        settings=AnalysisSettings(target_mde=data.target_mde, **settings),
    )


def _comparison(result: dict, variant: str, metric: str) -> dict:
    return next(c for c in result["comparisons"] if c["variant"] == variant and c["metric"] == metric)


@pytest.mark.parametrize("make", datasets.ALL, ids=lambda f: f.__name__)
def test_every_comparison_matches_scipy_on_per_user_values(make):
    data = make()
    result = _analyse(data)
    assert result["comparisons"]
    for comparison in result["comparisons"]:
        control = data.per_user_values(data.control, comparison["metric"])
        treatment = data.per_user_values(comparison["variant"], comparison["metric"])
        expected = stats.ttest_ind(treatment, control, equal_var=False)
        ci = expected.confidence_interval(0.95)
        assert comparison["diff"] == pytest.approx(treatment.mean() - control.mean(), abs=1e-6)
        assert comparison["p_value"] == pytest.approx(expected.pvalue, abs=1e-6)
        assert comparison["ci_low"] == pytest.approx(ci.low, abs=1e-6)
        assert comparison["ci_high"] == pytest.approx(ci.high, abs=1e-6)
        assert comparison["lift"] == pytest.approx(treatment.mean() / control.mean() - 1, abs=1e-6)


@pytest.mark.parametrize("make", datasets.ALL, ids=lambda f: f.__name__)
def test_variant_summaries_are_per_user_with_ddof_one(make):
    data = make()
    for variant in _analyse(data)["variants"]:
        for metric, summary in variant["metrics"].items():
            values = data.per_user_values(variant["key"], metric)
            assert summary["n"] == len(values)
            assert summary["mean"] == pytest.approx(values.mean(), abs=1e-6)
            assert summary["std"] == pytest.approx(values.std(ddof=1), abs=1e-6)


def test_clear_win_ships_the_treatment():
    decision = _analyse(datasets.clear_win())["decision"]
    assert decision["action"] == "ship"
    assert decision["variant"] == "b"
    assert "beats control on success_rate" in decision["reason"]


def test_no_difference_when_powered_and_not_significant():
    result = _analyse(datasets.no_difference())
    assert result["power"]["mde_rel"] < 0.05
    assert result["decision"]["action"] == "no_difference"
    assert result["decision"]["variant"] is None


def test_lower_is_better_metric_ships_the_faster_treatment():
    result = _analyse(datasets.lower_is_better())
    comparison = _comparison(result, "b", "response_time_ms")
    assert comparison["diff"] < 0
    assert comparison["chance_to_win"] > 0.99
    assert result["decision"] == {"action": "ship", "variant": "b", "reason": result["decision"]["reason"]}


def test_treatment_worse_on_a_lower_is_better_metric_rolls_back_to_control():
    result = _analyse(datasets.slower_treatment())
    assert _comparison(result, "b", "response_time_ms")["chance_to_win"] < 0.01
    assert result["decision"]["action"] == "ship"
    assert result["decision"]["variant"] == "control"
    assert result["decision"]["reason"].startswith("Roll back to control")


def test_significantly_worse_guardrail_blocks_a_primary_winner():
    result = _analyse(datasets.guardrail_harm())
    assert _comparison(result, "b", "success_rate")["significant"]
    assert result["decision"]["variant"] == "control"
    assert "guardrail response_time_ms" in result["decision"]["reason"]


def test_three_variants_use_holm_adjusted_p_values_for_significance():
    data = datasets.three_variants()
    result = _analyse(data)
    raw = [_comparison(result, v, "quality_score")["p_value"] for v in ("b", "c")]
    adjusted = [_comparison(result, v, "quality_score")["p_value_adjusted"] for v in ("b", "c")]
    smallest, largest = sorted(raw)
    by_hand = max(2 * smallest, largest)  # Holm with m = 2: both end at the larger of 2·p(1) and p(2)
    assert all(p < 0.05 for p in raw)
    assert adjusted == pytest.approx([by_hand, by_hand], abs=1e-12)
    assert not any(_comparison(result, v, "quality_score")["significant"] for v in ("b", "c"))
    assert result["decision"]["action"] == "keep_running"


def test_single_treatment_has_no_adjusted_p_value():
    assert _comparison(_analyse(datasets.clear_win()), "b", "success_rate")["p_value_adjusted"] is None


def test_user_level_aggregation_changes_the_answer_versus_per_call():
    data = datasets.many_calls_per_user()
    per_call = stats.ttest_ind(
        data.per_call_values("b", "success_rate"), data.per_call_values("control", "success_rate"), equal_var=False
    )
    assert per_call.pvalue < 1e-6  # counting calls, B "wins" overwhelmingly
    result = _analyse(data)
    assert _comparison(result, "b", "success_rate")["p_value"] > 0.05
    assert result["decision"]["action"] == "keep_running"
    assert "more users per variant" in result["decision"]["reason"]


def test_known_srm_invalidates_the_experiment():
    result = _analyse(datasets.known_srm())
    assert result["srm"]["ok"] is False
    assert result["srm"]["p_value"] == pytest.approx(stats.chisquare([5000, 5400]).pvalue, rel=1e-9)
    assert result["decision"]["action"] == "invalid"
    assert "Sample ratio mismatch" in result["decision"]["reason"]


def test_too_few_users_is_invalid():
    result = _analyse(datasets.clear_win(), min_users_per_variant=5000)
    assert result["decision"]["action"] == "invalid"
    assert "Too little data" in result["decision"]["reason"]


def test_sequential_mode_widens_intervals_and_raises_p_values():
    data = datasets.clear_win()
    fixed = _comparison(_analyse(data), "b", "success_rate")
    always_valid = _comparison(_analyse(data, sequential=True), "b", "success_rate")
    assert always_valid["ci_low"] < fixed["ci_low"] < fixed["ci_high"] < always_valid["ci_high"]
    assert always_valid["lift_ci_low"] < fixed["lift_ci_low"]
    assert always_valid["p_value"] > fixed["p_value"]


def test_missing_metric_is_omitted_not_zero():
    data = datasets.many_calls_per_user()
    data.guardrail_metrics = ["quality_score"]
    result = _analyse(data)
    assert all("quality_score" not in v["metrics"] for v in result["variants"])
    assert all(c["metric"] != "quality_score" for c in result["comparisons"])


def test_result_is_strict_json():
    json.dumps(_analyse(datasets.three_variants()), allow_nan=False)
