"""Confidence sequences: wider than fixed-horizon intervals, and covering the truth at every look."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from experiments.stats import sequential


@pytest.mark.parametrize("n", [10, 100, 1_000, 5_000, 50_000, 1_000_000])
def test_sequence_is_wider_than_the_fixed_horizon_interval(n):
    se = 1 / math.sqrt(n)
    fixed = stats.norm.ppf(0.975) * se
    assert sequential.halfwidth(se=se, n=n) > fixed


def test_sequence_matches_the_published_formula_at_the_tuning_point():
    alpha, tuning, n, se = 0.05, 5000, 5000, 0.02
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    sigma = se * math.sqrt(n)
    expected = sigma * math.sqrt(2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha))
    assert sequential.halfwidth(se=se, n=n, alpha=alpha, tuning=tuning) == pytest.approx(expected, rel=1e-12)


def test_always_valid_p_value_is_the_alpha_where_the_sequence_touches_zero():
    p = sequential.always_valid_p_value(estimate=0.1, se=0.02, n=4000)
    assert 0 < p < 0.05
    assert sequential.halfwidth(se=0.02, n=4000, alpha=p) == pytest.approx(0.1, rel=1e-6)


def test_small_effect_has_always_valid_p_value_one():
    assert sequential.always_valid_p_value(estimate=0.001, se=0.02, n=4000) == 1.0


def _simulate(*, seed: int, experiments: int, looks: int, per_look: int, effect: float):
    """Daily looks at a two-arm experiment; returns (sequence missed, fixed interval missed) per run."""
    rng = np.random.default_rng(seed)
    n_per_arm = looks * per_look
    control = rng.normal(0.0, 1.0, size=(experiments, n_per_arm))
    treatment = rng.normal(effect, 1.0, size=(experiments, n_per_arm))
    missed_sequence = np.zeros(experiments, dtype=bool)
    missed_fixed = np.zeros(experiments, dtype=bool)
    for look in range(1, looks + 1):
        n = look * per_look
        c, t = control[:, :n], treatment[:, :n]
        diff = t.mean(axis=1) - c.mean(axis=1)
        se = np.sqrt(c.var(axis=1, ddof=1) / n + t.var(axis=1, ddof=1) / n)
        for i in range(experiments):
            half = sequential.halfwidth(se=float(se[i]), n=2 * n)
            missed_sequence[i] |= abs(diff[i] - effect) > half
        missed_fixed |= np.abs(diff - effect) > stats.norm.ppf(0.975) * se
    return missed_sequence.mean(), missed_fixed.mean()


def test_sequence_covers_the_truth_at_every_look_in_a_seeded_simulation():
    sequence_miss, fixed_miss = _simulate(seed=2026, experiments=300, looks=20, per_look=50, effect=0.2)
    # Looking 20 times at a 95% fixed interval misses the truth far more often than 5%...
    assert fixed_miss > 0.15
    # ...while the confidence sequence keeps its promise across all looks.
    assert sequence_miss <= 0.05
