"""Sample ratio mismatch against scipy's chi-square goodness of fit."""

from __future__ import annotations

import pytest
from scipy import stats

from experiments.stats.srm import srm_check


def test_known_mismatch_matches_scipy_and_is_flagged():
    result = srm_check(exposures=[5000, 5400], weights=[1, 1])
    expected = stats.chisquare([5000, 5400], f_exp=[5200, 5200])
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.p_value < 0.001
    assert result.ok is False


def test_unequal_weights_are_the_expectation():
    exposures = [2010, 990, 1000]
    result = srm_check(exposures=exposures, weights=[50, 25, 25])
    expected = stats.chisquare(exposures, f_exp=[2000, 1000, 1000])
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.ok is True


def test_mismatch_below_eight_exposures_in_a_variant_is_not_flagged():
    result = srm_check(exposures=[7, 400], weights=[1, 1])
    assert result.p_value < 0.001
    assert result.checked is False
    assert result.ok is True


def test_no_exposures_has_no_p_value():
    result = srm_check(exposures=[0, 0], weights=[1, 1])
    assert result.p_value is None
    assert result.ok is True
