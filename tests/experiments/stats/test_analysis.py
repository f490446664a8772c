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
    decision = result["decision"]
    assert (decision["action"], decision["variant"], decision["state"], decision["tone"]) == (
        "ship",
        "b",
        "ship",
        "good",
    )
    # The headline's lift is the analysis' lift, to one decimal: numpy on the per-user means.
    data = datasets.lower_is_better()
    lift = (
        data.per_user_values("b", "response_time_ms").mean()
        / data.per_user_values("control", "response_time_ms").mean()
        - 1
    )
    assert decision["headline"] == f"Ship b: b is better on response_time_ms ({lift * 100:+.1f} %)"


def test_treatment_worse_on_a_lower_is_better_metric_rolls_back_to_control():
    result = _analyse(datasets.slower_treatment())
    assert _comparison(result, "b", "response_time_ms")["chance_to_win"] < 0.01
    assert result["decision"]["action"] == "ship"
    assert result["decision"]["variant"] == "control"
    decision = result["decision"]
    data = datasets.slower_treatment()
    lift = (
        data.per_user_values("b", "response_time_ms").mean()
        / data.per_user_values("control", "response_time_ms").mean()
        - 1
    )
    # One sentence, never "SHIP control" above "Roll back to control"; amber, not red.
    assert decision["headline"] == f"Keep control: b is worse on response_time_ms ({lift * 100:+.1f} %)"
    assert decision["reason"].startswith("Keep control: b is significantly worse on response_time_ms")
    assert (decision["state"], decision["tone"]) == ("keep_control", "warn")
    assert "ship" not in decision["headline"].lower() and "roll back" not in decision["reason"].lower()


def test_significantly_worse_guardrail_blocks_a_primary_winner():
    result = _analyse(datasets.guardrail_harm())
    assert _comparison(result, "b", "success_rate")["significant"]
    assert result["decision"]["variant"] == "control"
    assert "guardrail response_time_ms" in result["decision"]["reason"]
    assert result["decision"]["headline"].startswith("Keep control: b is worse on response_time_ms (+")


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
    smallest = min(len(data.per_user_values(v, "success_rate")) for v in ("control", "b"))
    assert result["decision"]["headline"] == (
        f"Keep running — {smallest:,} of {result['power']['users_needed']:,} users per variant needed"
    )
    assert (result["decision"]["state"], result["decision"]["tone"]) == ("keep_running", "neutral")


def test_known_srm_invalidates_the_experiment():
    result = _analyse(datasets.known_srm())
    assert result["srm"]["ok"] is False
    assert result["srm"]["p_value"] == pytest.approx(stats.chisquare([5000, 5400]).pvalue, rel=1e-9)
    assert result["decision"]["action"] == "invalid"
    assert "Sample ratio mismatch" in result["decision"]["reason"]
    # Red is kept for a broken setup.
    assert (result["decision"]["state"], result["decision"]["tone"]) == ("srm", "bad")
    assert result["decision"]["headline"].startswith("Invalid: sample ratio mismatch")


def test_too_few_users_is_invalid_for_the_api_and_collecting_data_for_people():
    data = datasets.clear_win()
    result = _analyse(data, min_users_per_variant=5000)
    decision = result["decision"]
    assert decision["action"] == "invalid"  # unchanged for API clients
    assert "Too little data" in decision["reason"]
    smallest = min(len(data.per_user_values(v, "success_rate")) for v in ("control", "b"))
    needed = max(5000, result["power"]["users_needed"])
    assert decision["headline"] == f"Collecting data — {smallest:,} of {needed:,} users per variant needed"
    assert (decision["state"], decision["tone"]) == ("collecting_data", "neutral")


def test_a_just_started_experiment_is_collecting_data_with_the_minimum_as_target():
    """One user per variant: no comparison and no power yet, so the target is the minimum."""
    data = datasets.clear_win()
    data.calls = [c for c in data.calls if c["user_id"] in {f"{v}-u{i}" for v in ("control", "b") for i in range(1)}]
    result = _analyse(data, min_users_per_variant=1470)
    assert result["decision"]["headline"] == "Collecting data — 1 of 1,470 users per variant needed"
    assert result["decision"]["tone"] == "neutral"


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
