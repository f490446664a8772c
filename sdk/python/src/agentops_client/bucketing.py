"""GrowthBook's bucketing as the platform runs it: the same user lands in the same variant here.

A re-implementation of the GrowthBook SDK spec's ``hash``, ``inNamespace``, ``getBucketRanges``
and ``chooseVariation`` for the rules the platform's features payload carries (hashVersion 1 and
2, coverage, weights, namespaces). FNV-1a 32 runs over UTF-16 code units, as the JS SDK's
``charCodeAt`` loop does. The platform's tests hold this module to its own assignment for
10,000 users (``tests/sdk``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF
# GrowthBook replaces a weight vector whose sum falls outside this band with equal weights.
_WEIGHT_SUM_MIN = 0.99
_WEIGHT_SUM_MAX = 1.01


def fnv1a32(value: str, hval: int = _FNV_OFFSET) -> int:
    """FNV-1a 32 of ``value``'s UTF-16 code units, continuing from ``hval``."""
    if value.isascii():
        for byte in value.encode():
            hval = ((hval ^ byte) * _FNV_PRIME) & _MASK
        return hval
    data = value.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        hval = ((hval ^ (data[i] | (data[i + 1] << 8))) * _FNV_PRIME) & _MASK
    return hval


def gb_hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's ``hash``: a number in [0, 1); None for an unknown hash version."""
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def namespace_position(user_id: str, namespace: str) -> float:
    """GrowthBook's ``inNamespace`` hash: hashVersion 1 of the user with the seed ``"__" + namespace``."""
    return (fnv1a32(user_id + "__" + namespace) % 1000) / 1000


def _valid_weights(weights: object, count: int) -> bool:
    if not isinstance(weights, list) or len(weights) != count:
        return False
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
            return False
    return _WEIGHT_SUM_MIN <= sum(weights) <= _WEIGHT_SUM_MAX


def bucket_ranges(count: int, coverage: float = 1, weights: object = None) -> list[tuple[float, float]]:
    """GrowthBook's ``getBucketRanges``: each variation's ``[start, start + coverage * weight)``."""
    coverage = min(max(coverage, 0), 1)
    if not _valid_weights(weights, count):
        weights = [1 / count] * count if count > 0 else []
    cumulative = 0.0
    ranges = []
    for weight in weights:  # type: ignore[union-attr]
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """GrowthBook's ``chooseVariation``: the first range holding ``n``, or -1."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1
