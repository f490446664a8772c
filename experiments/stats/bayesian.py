"""Bayesian read-out under a flat prior on the absolute difference.

With a flat (improper) prior, the posterior of the difference d = treatment - control is the
likelihood's normal approximation d ~ N(diff, se²) (GrowthBook's gbstats uses the same Gaussian
posterior; with a flat prior it reduces to this). Both quantities respect the metric's
direction: for a lower-is-better metric, "better" means d < 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm


@dataclass(frozen=True, slots=True)
class BayesianResult:
    chance_to_win: float
    expected_loss: float


def bayesian_compare(*, diff: float, se: float, higher_is_better: bool = True) -> BayesianResult:
    """P(treatment better) and E[max(0, loss of choosing the treatment)] in the metric's units.

    With g = direction · d ~ N(μ, se²) the gain of choosing the treatment (μ = direction · diff),
    chance_to_win = P(g > 0) = Φ(μ/se) and the loss is max(0, -g), whose expectation for a
    normal variable is se·φ(μ/se) - μ·Φ(-μ/se).
    """
    gain = diff if higher_is_better else -diff
    if se == 0 or not math.isfinite(se):
        return BayesianResult(
            chance_to_win=1.0 if gain > 0 else (0.5 if gain == 0 else 0.0), expected_loss=max(0.0, -gain)
        )
    z = gain / se
    chance_to_win = float(norm.cdf(z))
    expected_loss = float(se * norm.pdf(z) - gain * norm.cdf(-z))
    return BayesianResult(chance_to_win=chance_to_win, expected_loss=max(0.0, expected_loss))
