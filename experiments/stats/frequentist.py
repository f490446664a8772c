"""Welch's unequal-variance t-test on per-user values, its intervals, and Holm's adjustment.

Sources: B. L. Welch (1947), "The generalization of Student's problem when several different
population variances are involved", Biometrika 34; F. E. Satterthwaite (1946), "An approximate
distribution of estimates of variance components"; the delta method for a ratio of independent
means as GrowthBook's gbstats uses for relative effects; S. Holm (1979), "A simple sequentially
rejective multiple test procedure", Scand. J. Statist. 6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

from .moments import Moments


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class WelchResult:
    """Treatment - control on one metric (absolute and relative), Welch's test and 95% intervals."""

    diff: float
    se: float
    df: float
    t: float
    p_value: float
    ci: Interval
    lift: float | None
    lift_se: float | None
    lift_ci: Interval | None


def welch_df(control: Moments, treatment: Moments) -> float:
    """Welch-Satterthwaite degrees of freedom of the difference of two means."""
    a = control.variance / control.n
    b = treatment.variance / treatment.n
    denominator = a * a / (control.n - 1) + b * b / (treatment.n - 1)
    if denominator == 0:
        return math.inf
    return (a + b) ** 2 / denominator


def lift_standard_error(control: Moments, treatment: Moments) -> float | None:
    """Delta-method standard error of treatment_mean / control_mean - 1 (independent groups).

    Var(m_t/m_c) ≈ var_t/(n_t m_c²) + m_t² var_c/(n_c m_c⁴). None when the control mean is zero,
    where a relative lift is undefined.
    """
    mc, mt = control.mean, treatment.mean
    if mc == 0:
        return None
    variance = treatment.variance / (treatment.n * mc * mc) + mt * mt * control.variance / (control.n * mc**4)
    return math.sqrt(variance)


def welch_test(*, control: Moments, treatment: Moments, alpha: float = 0.05) -> WelchResult:
    """Two-sided Welch t-test of treatment - control with (1 - alpha) intervals.

    Requires at least two users per group. A zero standard error (both groups constant) gives
    p = 1 for equal means and p = 0 otherwise, the limit of the test statistic.
    """
    if control.n < 2 or treatment.n < 2:
        raise ValueError("Welch's test needs at least two users per group")
    diff = treatment.mean - control.mean
    se = math.sqrt(control.variance / control.n + treatment.variance / treatment.n)
    df = welch_df(control, treatment)
    if se == 0:
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        p_value = 1.0 if diff == 0 else 0.0
        critical = 0.0
    else:
        t = diff / se
        p_value = float(2 * scipy_stats.t.sf(abs(t), df))
        critical = float(scipy_stats.t.ppf(1 - alpha / 2, df))
    ci = Interval(diff - critical * se, diff + critical * se)

    lift = lift_se = lift_ci = None
    if control.mean != 0:
        lift = treatment.mean / control.mean - 1
        lift_se = lift_standard_error(control, treatment)
        lift_ci = Interval(lift - critical * lift_se, lift + critical * lift_se)
    return WelchResult(
        diff=diff, se=se, df=df, t=t, p_value=p_value, ci=ci, lift=lift, lift_se=lift_se, lift_ci=lift_ci
    )


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending, the k-th smallest (0-based) becomes max over j ≤ k of min(1, (m - j)·p_(j)):
    the running maximum keeps the adjusted values monotone, as statsmodels' ``multipletests``
    with ``method="holm"`` returns them.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
