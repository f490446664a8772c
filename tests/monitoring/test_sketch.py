"""The sketch's percentiles stay within the stated relative error of exact percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.sketch import RELATIVE_ERROR, bucket_index, exact_quantile, merge, quantiles

QS = (0.5, 0.9, 0.95, 0.99, 0.999)


def _histogram(values) -> dict[int, int]:
    histogram: dict[int, int] = {}
    for value in values:
        index = bucket_index(float(value))
        histogram[index] = histogram.get(index, 0) + 1
    return histogram


def _assert_within_bound(values) -> None:
    ordered = sorted(float(v) for v in values)
    estimates = quantiles(_histogram(ordered), QS)
    for q, estimate in zip(QS, estimates, strict=True):
        exact = exact_quantile(ordered, q)
        assert abs(estimate - exact) <= RELATIVE_ERROR * exact * (1 + 1e-9), (q, estimate, exact)


@pytest.mark.parametrize("sigma", [0.5, 1.5, 3.0])
def test_percentiles_of_log_normal_durations_are_within_relative_error(sigma):
    values = np.random.default_rng(7).lognormal(mean=3.0, sigma=sigma, size=50_000)
    _assert_within_bound(values)


def test_percentiles_of_bimodal_durations_are_within_relative_error():
    rng = np.random.default_rng(11)
    fast = rng.normal(loc=12.0, scale=2.0, size=40_000).clip(0.01)  # cache hits
    slow = rng.lognormal(mean=np.log(900.0), sigma=0.4, size=10_000)  # upstream calls
    _assert_within_bound(np.concatenate([fast, slow]))


def test_merging_histograms_equals_the_histogram_of_all_values():
    rng = np.random.default_rng(3)
    parts = [rng.lognormal(2.0, 1.0, size=5_000) for _ in range(4)]
    assert merge(_histogram(part) for part in parts) == _histogram(np.concatenate(parts))


def test_sub_microsecond_and_huge_durations_are_clamped_not_rejected():
    assert bucket_index(0.0) == bucket_index(0.000_1)
    assert bucket_index(10**12) == bucket_index(86_400_000.0)


def test_quantiles_of_an_empty_histogram_are_none():
    assert quantiles({}, [0.5, 0.99]) == [None, None]
