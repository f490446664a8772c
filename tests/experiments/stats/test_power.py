"""Minimum detectable effects and sample sizes: power at the answer reaches the target."""

from __future__ import annotations

import math

import pytest
from scipy.stats import norm

from experiments.stats.power import mde_absolute, users_needed_for_mean, users_needed_for_rate

Z_ALPHA = norm.ppf(0.975)


def _power_for_means(n: int, std: float, delta: float) -> float:
    se = math.sqrt(2 * std**2 / n)
    return norm.cdf(delta / se - Z_ALPHA) + norm.cdf(-delta / se - Z_ALPHA)


def test_mde_at_current_sample_has_eighty_percent_power():
    se = 0.0123
    mde = mde_absolute(se=se)
    # Power of a two-sided z-test at the MDE (the far tail is negligible).
    assert norm.cdf(mde / se - Z_ALPHA) == pytest.approx(0.8, abs=1e-6)


@pytest.mark.parametrize(("mean", "std", "mde"), [(800.0, 240.0, 0.05), (0.7, 0.15, 0.02), (3.0, 9.0, 0.1)])
def test_users_needed_for_a_mean_is_the_smallest_sample_with_the_power(mean, std, mde):
    n = users_needed_for_mean(baseline_mean=mean, baseline_std=std, relative_mde=mde)
    delta = mean * mde
    assert _power_for_means(n, std, delta) >= 0.8
    assert _power_for_means(n - 1, std, delta) < 0.8


@pytest.mark.parametrize(("rate", "mde"), [(0.10, 0.10), (0.5, 0.05), (0.02, 0.25), (0.6, -0.1)])
def test_users_needed_for_a_rate_agrees_with_cohens_h(rate, mde):
    ours = users_needed_for_rate(baseline_rate=rate, relative_mde=mde)
    # statsmodels' NormalIndPower with proportion_effectsize (Cohen's arcsine h), by hand.
    h = 2 * math.asin(math.sqrt(rate * (1 + mde))) - 2 * math.asin(math.sqrt(rate))
    cohen = 2 * ((Z_ALPHA + norm.ppf(0.8)) / h) ** 2  # per group: h * sqrt(n / 2) = z_alpha + z_power
    assert ours == pytest.approx(cohen, rel=0.01)


def test_rate_sample_size_matches_fleiss_formula_for_ten_percent_baseline():
    p1, p2 = 0.10, 0.11
    p_bar = (p1 + p2) / 2
    expected = (
        Z_ALPHA * math.sqrt(2 * p_bar * (1 - p_bar)) + norm.ppf(0.8) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / (p2 - p1) ** 2
    assert users_needed_for_rate(baseline_rate=0.10, relative_mde=0.10) == math.ceil(expected)


def test_rate_outside_zero_and_one_is_refused():
    with pytest.raises(ValueError, match="strictly between"):
        users_needed_for_rate(baseline_rate=0.95, relative_mde=0.1)
