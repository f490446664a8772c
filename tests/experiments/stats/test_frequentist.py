"""Welch's test, its intervals and Holm's adjustment against scipy on per-user values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from experiments.stats.frequentist import holm_adjust, welch_test
from experiments.stats.moments import Moments

from . import datasets

TOLERANCE = 1e-6
CASES = [datasets.clear_win, datasets.no_difference, datasets.lower_is_better, datasets.three_variants]


def _scipy_welch(treatment: np.ndarray, control: np.ndarray):
    result = stats.ttest_ind(treatment, control, equal_var=False)
    return result, result.confidence_interval(0.95)


@pytest.mark.parametrize("make", CASES, ids=lambda f: f.__name__)
def test_welch_matches_scipy_on_per_user_values(make):
    data = make()
    control_values = data.per_user_values(data.control, data.primary_metric)
    for variant in data.variant_keys:
        if variant == data.control:
            continue
        values = data.per_user_values(variant, data.primary_metric)
        ours = welch_test(control=Moments.from_values(control_values), treatment=Moments.from_values(values))
        expected, ci = _scipy_welch(values, control_values)
        assert ours.diff == pytest.approx(values.mean() - control_values.mean(), abs=TOLERANCE)
        assert ours.t == pytest.approx(expected.statistic, rel=TOLERANCE)
        assert ours.df == pytest.approx(expected.df, rel=TOLERANCE)
        assert ours.p_value == pytest.approx(expected.pvalue, rel=TOLERANCE, abs=1e-12)
        assert ours.ci.low == pytest.approx(ci.low, abs=TOLERANCE)
        assert ours.ci.high == pytest.approx(ci.high, abs=TOLERANCE)


def test_moments_give_ddof1_standard_deviation():
    values = np.array([1.0, 2.0, 4.0, 8.0, 16.5])
    moments = Moments.from_values(values)
    assert moments.mean == pytest.approx(values.mean(), abs=1e-12)
    assert moments.std == pytest.approx(values.std(ddof=1), abs=1e-12)


def test_moments_of_two_halves_add_up_to_the_whole():
    values = np.arange(10, dtype=float) ** 1.5
    whole = Moments.from_values(values)
    parts = Moments.from_values(values[:4]) + Moments.from_values(values[4:])
    assert parts.n == whole.n
    assert parts.variance == pytest.approx(whole.variance, rel=1e-12)


def test_lift_interval_is_the_delta_method_gradient_form():
    data = datasets.clear_win()
    c = data.per_user_values("control", "success_rate")
    t = data.per_user_values("b", "success_rate")
    ours = welch_test(control=Moments.from_values(c), treatment=Moments.from_values(t))
    # Delta method written as a gradient-covariance product: g(mc, mt) = mt/mc - 1.
    gradient = np.array([-t.mean() / c.mean() ** 2, 1 / c.mean()])
    covariance = np.diag([c.var(ddof=1) / len(c), t.var(ddof=1) / len(t)])
    se = math.sqrt(gradient @ covariance @ gradient)
    critical = stats.t.ppf(0.975, ours.df)
    assert ours.lift == pytest.approx(t.mean() / c.mean() - 1, abs=TOLERANCE)
    assert ours.lift_ci.low == pytest.approx(ours.lift - critical * se, abs=TOLERANCE)
    assert ours.lift_ci.high == pytest.approx(ours.lift + critical * se, abs=TOLERANCE)


def test_lift_is_undefined_when_the_control_mean_is_zero():
    ours = welch_test(control=Moments.from_values([0.0, 0.0, 1.0, -1.0]), treatment=Moments.from_values([1, 2, 3]))
    assert ours.lift is None
    assert ours.lift_ci is None


def test_constant_groups_with_equal_means_give_p_one():
    ours = welch_test(control=Moments.from_values([3.0] * 5), treatment=Moments.from_values([3.0] * 7))
    assert ours.p_value == 1.0
    assert ours.ci.width == 0


def test_welch_refuses_fewer_than_two_users():
    with pytest.raises(ValueError, match="two users"):
        welch_test(control=Moments.from_values([1.0]), treatment=Moments.from_values([1.0, 2.0]))


def _holm_by_hand(p_values):
    """Holm (1979) written out: sort, multiply by (m - rank), carry the running maximum, cap at 1."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()


@pytest.mark.parametrize(
    "p_values",
    [[0.01, 0.04, 0.03], [0.03, 0.0315], [0.2, 0.001, 0.5, 0.04], [0.9, 0.8], [0.5]],
)
def test_holm_adjustment_matches_the_hand_computation(p_values):
    assert holm_adjust(p_values) == pytest.approx(_holm_by_hand(p_values), abs=1e-15)


def test_holm_adjusted_p_values_never_drop_below_the_raw_ones():
    p_values = [0.012, 0.02, 0.3, 0.001]
    assert all(a >= p for a, p in zip(holm_adjust(p_values), p_values, strict=True))
