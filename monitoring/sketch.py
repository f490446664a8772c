"""Log-spaced histograms with a bounded relative error (the DDSketch mapping).

A duration ``x`` (milliseconds) goes to bucket ``i = ceil(log_gamma(x))`` with
``gamma = (1 + alpha) / (1 - alpha)``, so bucket ``i`` covers ``(gamma**(i-1), gamma**i]``. Reporting
``2 * gamma**i / (gamma + 1)`` for anything in bucket ``i`` is within ``alpha`` of every value in it
(Masson, Rim and Lee, "DDSketch", VLDB 2019, Proposition 3). Histograms are plain ``{index: count}``
maps, so merging two of them (two processes, two hosts, sixty minutes) is adding counts, exactly.

The q-quantile is the value at rank ``floor(q * (n - 1))`` of the sorted data; the sketch walks
the buckets to the one holding that rank and returns its representative value, which is therefore
within ``alpha`` (relative) of the exact quantile. ``docs/monitoring.md`` has the proof.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

# The relative accuracy every histogram of the platform is built with (1 %).
RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)

# Milliseconds: the accuracy guarantee holds from 1 µs to one day; smaller values are reported in
# the lowest bucket, larger ones in the highest (the ingestion API rejects durations above a day).
MIN_VALUE_MS = 0.001
MAX_VALUE_MS = 86_400_000.0
MIN_INDEX = math.ceil(math.log(MIN_VALUE_MS) / _LOG_GAMMA)
MAX_INDEX = math.ceil(math.log(MAX_VALUE_MS) / _LOG_GAMMA)


def bucket_index(value_ms: float) -> int:
    """The bucket a duration belongs to (clamped to the accurate range)."""
    if value_ms <= MIN_VALUE_MS:
        return MIN_INDEX
    if value_ms >= MAX_VALUE_MS:
        return MAX_INDEX
    return math.ceil(math.log(value_ms) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The representative value of a bucket: within RELATIVE_ERROR of every value it holds."""
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


def bucket_upper_bound(index: int) -> float:
    return GAMMA**index


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            merged[index] = merged.get(index, 0) + count
    return merged


def quantiles(histogram: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    """The q-quantiles (0 <= q <= 1) of a histogram, None when it is empty."""
    items = sorted((index, count) for index, count in histogram.items() if count > 0)
    total = sum(count for _, count in items)
    qs = list(qs)
    if total == 0:
        return [None for _ in qs]
    results: list[float | None] = []
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} is outside [0, 1]")
        rank = math.floor(q * (total - 1))
        seen = 0
        for index, count in items:
            seen += count
            if seen > rank:
                results.append(bucket_value(index))
                break
    return results


def exact_quantile(sorted_values: list[float], q: float) -> float:
    """The reference the sketch is measured against: the value at rank floor(q * (n - 1))."""
    return sorted_values[math.floor(q * (len(sorted_values) - 1))]
