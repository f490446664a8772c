"""Sample ratio mismatch: do exposures split as the configured weights say they should?

Pearson's chi-square goodness-of-fit test of exposures per variant against the expected
counts total · weight / Σweights, with k - 1 degrees of freedom (Fabijan et al. 2019,
"Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD; GrowthBook's
``check_srm`` does the same and flags at p < 0.001).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import chi2

SRM_P_VALUE_THRESHOLD = 0.001
# Below this many exposures in some variant the chi-square approximation is poor and one stray
# user moves p a lot, so the check reports its p-value but does not flag.
SRM_MIN_EXPOSURES_PER_VARIANT = 8


@dataclass(frozen=True, slots=True)
class SrmResult:
    p_value: float | None
    ok: bool
    checked: bool


def srm_check(*, exposures: Sequence[int], weights: Sequence[float]) -> SrmResult:
    """Chi-square p-value of observed exposures against weights; ``ok`` is False on a mismatch."""
    if len(exposures) != len(weights) or len(exposures) < 2:
        raise ValueError("srm_check needs one weight per variant and at least two variants")
    total = sum(exposures)
    weight_sum = float(sum(weights))
    if total == 0 or weight_sum <= 0:
        return SrmResult(p_value=None, ok=True, checked=False)
    statistic = 0.0
    for observed, weight in zip(exposures, weights, strict=True):
        expected = total * weight / weight_sum
        statistic += (observed - expected) ** 2 / expected
    p_value = float(chi2.sf(statistic, len(exposures) - 1))
    checked = min(exposures) >= SRM_MIN_EXPOSURES_PER_VARIANT
    return SrmResult(p_value=p_value, ok=not (checked and p_value < SRM_P_VALUE_THRESHOLD), checked=checked)
