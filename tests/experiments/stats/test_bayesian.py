"""Chance to win and expected loss under a flat prior, checked by numerical integration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from experiments.stats.bayesian import bayesian_compare


def _integrated(diff: float, se: float, higher_is_better: bool) -> tuple[float, float]:
    direction = 1 if higher_is_better else -1
    posterior = stats.norm(diff, se)
    lo, hi = diff - 12 * se, diff + 12 * se
    win = integrate.quad(lambda d: posterior.pdf(d) * (direction * d > 0), lo, hi, points=[0], limit=200)[0]
    loss = integrate.quad(lambda d: posterior.pdf(d) * max(0.0, -direction * d), lo, hi, points=[0], limit=200)[0]
    return win, loss


@pytest.mark.parametrize(
    ("diff", "se", "higher_is_better"),
    [(0.05, 0.02, True), (-0.01, 0.02, True), (-30.0, 12.0, False), (12.0, 12.0, False), (0.0, 1.0, True)],
)
def test_chance_to_win_and_expected_loss_match_integration(diff, se, higher_is_better):
    ours = bayesian_compare(diff=diff, se=se, higher_is_better=higher_is_better)
    win, loss = _integrated(diff, se, higher_is_better)
    assert ours.chance_to_win == pytest.approx(win, abs=1e-6)
    assert ours.expected_loss == pytest.approx(loss, abs=1e-6)


def test_lower_is_better_metric_wins_when_the_treatment_is_lower():
    ours = bayesian_compare(diff=-50.0, se=10.0, higher_is_better=False)
    assert ours.chance_to_win > 0.999
    assert ours.expected_loss < 1e-4


def test_chance_to_win_matches_monte_carlo_of_the_posterior():
    rng = np.random.default_rng(1)
    draws = rng.normal(0.02, 0.015, size=400_000)
    ours = bayesian_compare(diff=0.02, se=0.015)
    assert ours.chance_to_win == pytest.approx((draws > 0).mean(), abs=0.005)
    assert ours.expected_loss == pytest.approx(np.maximum(0, -draws).mean(), abs=0.0005)


def test_zero_standard_error_is_decided_by_the_sign_alone():
    assert bayesian_compare(diff=1.0, se=0.0).chance_to_win == 1.0
    assert bayesian_compare(diff=-1.0, se=0.0).expected_loss == 1.0
