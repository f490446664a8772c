"""Always-valid inference: asymptotic Gaussian-mixture confidence sequences.

I. Waudby-Smith, D. Arbour, R. Sinha, E. H. Kennedy, A. Ramdas (2023), "Time-uniform central
limit theory and asymptotic confidence sequences", arXiv:2103.06476, eq. (2.8) with rho tuned by
their §B.2 (eq. 161 of v1); GrowthBook's ``SequentialTwoSidedTTest`` uses the same interval.
For N observations with per-observation standard deviation sigma_hat the (1 - alpha) confidence sequence
of a mean is

    estimate ± sigma_hat · √( 2(Nrho² + 1) / (N²rho²) · log(√(Nrho² + 1) / alpha) ),

valid simultaneously at every N, so staff may look every day without inflating the false
positive rate. For a difference of two means, N = n_c + n_t and sigma_hat² = se² · N. The tuning
parameter N* (``EXPERIMENT_STATS_SEQUENTIAL_TUNING``, default 5,000 as GrowthBook) is the
sample size at which the sequence is tightest: rho = √((-2 log alpha + log(-2 log alpha + 1)) / N*).

The always-valid p-value is the smallest alpha whose sequence excludes zero (found by root
finding; the half-width decreases as alpha grows).
"""

from __future__ import annotations

import math

from scipy.optimize import brentq

from .frequentist import Interval

DEFAULT_TUNING = 5000


def _rho(alpha: float, tuning: float) -> float:
    log_alpha = -2 * math.log(alpha)
    return math.sqrt((log_alpha + math.log(log_alpha + 1)) / tuning)


def halfwidth(*, se: float, n: int, alpha: float = 0.05, tuning: float = DEFAULT_TUNING) -> float:
    """Half-width of the confidence sequence for an estimate with standard error ``se`` from ``n`` units."""
    if n <= 0:
        return math.inf
    rho = _rho(alpha, tuning)
    sigma = se * math.sqrt(n)
    n_rho2 = n * rho * rho
    return sigma * math.sqrt(2 * (n_rho2 + 1) / (n * n_rho2) * math.log(math.sqrt(n_rho2 + 1) / alpha))


def confidence_sequence(
    *, estimate: float, se: float, n: int, alpha: float = 0.05, tuning: float = DEFAULT_TUNING
) -> Interval:
    width = halfwidth(se=se, n=n, alpha=alpha, tuning=tuning)
    return Interval(estimate - width, estimate + width)


def always_valid_p_value(*, estimate: float, se: float, n: int, tuning: float = DEFAULT_TUNING) -> float:
    """Smallest alpha at which the (1 - alpha) confidence sequence excludes zero; 1 when none does."""
    target = abs(estimate)
    if se == 0:
        return 1.0 if target == 0 else 0.0
    if halfwidth(se=se, n=n, alpha=1 - 1e-12, tuning=tuning) >= target:
        return 1.0
    low = 1e-300
    if halfwidth(se=se, n=n, alpha=low, tuning=tuning) <= target:
        return 0.0
    return float(brentq(lambda a: halfwidth(se=se, n=n, alpha=a, tuning=tuning) - target, low, 1 - 1e-12, xtol=1e-14))
