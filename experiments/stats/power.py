"""Power: the smallest effect the current sample can detect, and users needed for a target effect.

Normal-approximation formulas for a two-sided test of two independent means (e.g. Chow, Shao &
Wang, "Sample Size Calculations in Clinical Research", 2nd ed., §3.2) and, for rates, the
unpooled/pooled formula of Fleiss, Levin & Paik, "Statistical Methods for Rates and
Proportions", 3rd ed., eq. 4.14 (without continuity correction).
"""

from __future__ import annotations

import math

from scipy.stats import norm

DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8


def _z_sum(alpha: float, power: float) -> float:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must lie strictly between 0 and 1")
    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def mde_absolute(*, se: float, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER) -> float:
    """Minimum detectable absolute difference given the difference's standard error now."""
    return _z_sum(alpha, power) * se


def users_needed_for_means(
    *,
    std_control: float,
    std_treatment: float | None = None,
    absolute_mde: float,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
) -> int:
    """Users per variant so that a difference of ``absolute_mde`` is detected with ``power``.

    n = (z_{1-alpha/2} + z_{power})² · (sigma_c² + sigma_t²) / δ², with equal group sizes.
    """
    if absolute_mde == 0:
        raise ValueError("the minimum detectable effect must not be zero")
    std_treatment = std_control if std_treatment is None else std_treatment
    n = _z_sum(alpha, power) ** 2 * (std_control**2 + std_treatment**2) / absolute_mde**2
    return max(2, math.ceil(n))


def users_needed_for_mean(
    *,
    baseline_mean: float,
    baseline_std: float,
    relative_mde: float,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
) -> int:
    """Sample-size calculator for a mean metric: baseline mean and std, relative MDE → users per variant."""
    return users_needed_for_means(
        std_control=baseline_std, absolute_mde=abs(baseline_mean * relative_mde), alpha=alpha, power=power
    )


def users_needed_for_rate(
    *, baseline_rate: float, relative_mde: float, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER
) -> int:
    """Sample-size calculator for a rate: baseline rate and relative MDE → users per variant.

    n = (z_{1-alpha/2}·√(2·p̄(1-p̄)) + z_{power}·√(p₁(1-p₁) + p₂(1-p₂)))² / (p₂ - p₁)²,
    p₂ = p₁·(1 + MDE), p̄ = (p₁ + p₂)/2.
    """
    p1 = baseline_rate
    p2 = baseline_rate * (1 + relative_mde)
    if not 0 < p1 < 1 or not 0 < p2 < 1:
        raise ValueError("baseline and target rates must lie strictly between 0 and 1")
    if p1 == p2:
        raise ValueError("the minimum detectable effect must not be zero")
    _z_sum(alpha, power)
    z_alpha = norm.ppf(1 - alpha / 2)
    z_power = norm.ppf(power)
    p_bar = (p1 + p2) / 2
    numerator = z_alpha * math.sqrt(2 * p_bar * (1 - p_bar)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return max(2, math.ceil(numerator**2 / (p2 - p1) ** 2))
