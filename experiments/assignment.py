"""GrowthBook-compatible bucketing: the same answer as any stock GrowthBook SDK fed our payload.

The functions mirror GrowthBook's SDK spec (``hash``, ``inNamespace``, ``getBucketRanges``,
``chooseVariation``) and are tested against GrowthBook's own test vectors and the ``growthbook``
Python SDK. ``CompiledExperiment`` is the pre-computed, immutable form of a running experiment
that the resolve hot path evaluates without touching the database.

FNV-1a 32 runs over UTF-16 code units, as the JS SDK's ``charCodeAt`` loop and the current Python
SDK do; inside the Basic Multilingual Plane that is the same as hashing code points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF

# GrowthBook replaces a weight vector whose sum falls outside this band with equal weights.
_WEIGHT_SUM_MIN = 0.99
_WEIGHT_SUM_MAX = 1.01


def fnv1a32(value: str, hval: int = _FNV_OFFSET) -> int:
    """FNV-1a 32-bit hash of ``value``'s UTF-16 code units.

    ``hval`` continues from a previous state: ``fnv1a32(b, fnv1a32(a)) == fnv1a32(a + b)``, which
    lets a compiled experiment hash its seed once instead of on every call.
    """
    if value.isascii():
        # ASCII bytes are the code units; iterating bytes is faster than ord() per character.
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


def namespace_hash(user_id: str, namespace: str) -> float:
    """Where a user falls in a namespace: hashVersion 1 on ``"__" + namespace``, in [0, 1)."""
    return (fnv1a32(user_id + "__" + namespace) % 1000) / 1000


def in_namespace(user_id: str, namespace: tuple[str, float, float]) -> bool:
    """GrowthBook's ``inNamespace``: hashVersion 1 on ``"__" + name``, half-open ``[start, end)``."""
    n = gb_hash("__" + namespace[0], user_id, 1)
    return n is not None and namespace[1] <= n < namespace[2]


def equal_weights(num_variations: int) -> list[float]:
    """GrowthBook's ``getEqualWeights``."""
    if num_variations < 1:
        return []
    return [1 / num_variations] * num_variations


def _valid_weights(weights, num_variations: int) -> bool:
    if not isinstance(weights, list) or len(weights) != num_variations:
        return False
    if not all(isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0 for w in weights):
        return False
    return _WEIGHT_SUM_MIN <= sum(weights) <= _WEIGHT_SUM_MAX


def bucket_ranges(num_variations: int, coverage: float = 1, weights: list[float] | None = None) -> list[tuple]:
    """GrowthBook's ``getBucketRanges``: each variation's ``[start, start + coverage * weight)``."""
    coverage = min(max(coverage, 0), 1)
    if not _valid_weights(weights, num_variations):
        weights = equal_weights(num_variations)
    cumulative: float = 0
    ranges = []
    for weight in weights:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variation(n: float, ranges: list[tuple]) -> int:
    """GrowthBook's ``chooseVariation``: the first range holding ``n``, or -1."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1


def normalised_weights(weights: list[float]) -> list[float]:
    """Weights scaled to sum to 1 (what the payload carries and bucketing uses)."""
    total = math.fsum(weights)
    return [w / total for w in weights]


@dataclass(frozen=True, slots=True)
class CompiledVariant:
    id: int
    key: str
    content: str
    # The prompt version the variant serves (None only for rows made outside the services).
    version: int | None = None
    # ``{key, version, label, content, config}`` as resolve answers it (shared: never mutate).
    prompt: dict | None = None


@dataclass(frozen=True, slots=True)
class CompiledExperiment:
    """A live experiment reduced to what bucketing needs; built once per cache version."""

    id: int
    key: str
    seed: str
    prompt_type: str
    namespace_start: float
    namespace_end: float
    weights: tuple[float, ...]
    ranges: tuple[tuple[float, float], ...]
    variants: tuple[CompiledVariant, ...]
    running: bool
    seed_state: int  # FNV-1a state after the seed: the hash of seed + user continues from here

    @classmethod
    def build(
        cls,
        *,
        id: int,
        key: str,
        seed: str,
        prompt_type: str,
        namespace_start: float,
        namespace_end: float,
        weights: list[float],
        variants: list[CompiledVariant],
        running: bool = True,
    ) -> CompiledExperiment:
        normalised = normalised_weights(weights)
        return cls(
            id=id,
            key=key,
            seed=seed,
            prompt_type=prompt_type,
            namespace_start=namespace_start,
            namespace_end=namespace_end,
            weights=tuple(normalised),
            ranges=tuple(bucket_ranges(len(normalised), 1, normalised)),
            variants=tuple(variants),
            running=running,
            seed_state=fnv1a32(seed),
        )

    def in_slice(self, user_id: str) -> bool:
        """Is the user inside this experiment's namespace slice (and therefore in the experiment)?"""
        return self.holds(namespace_hash(user_id, self.prompt_type))

    def holds(self, namespace_position: float) -> bool:
        """Does the slice hold this namespace position (``namespace_hash`` of a user)?"""
        return self.namespace_start <= namespace_position < self.namespace_end

    def variant_index(self, user_id: str) -> int:
        """The variation GrowthBook assigns a user already inside the slice (coverage 1)."""
        n = (fnv1a32(str(fnv1a32(user_id, self.seed_state))) % 10000) / 10000
        for index, (start, end) in enumerate(self.ranges):
            if start <= n < end:
                return index
        return -1

    def assign(self, user_id: str) -> CompiledVariant | None:
        """The user's variant, or None when outside the slice (or with an empty id, like GrowthBook)."""
        if not user_id or not self.in_slice(user_id):
            return None
        index = self.variant_index(user_id)
        return self.variants[index] if index >= 0 else None
