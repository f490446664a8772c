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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


def _code_units(value: str) -> list[int]:
    """The UTF-16 code units ``fnv1a32`` hashes (the bytes, for ASCII)."""
    if value.isascii():
        return list(value.encode())
    data = value.encode("utf-16-le", "surrogatepass")
    return [data[i] | (data[i + 1] << 8) for i in range(0, len(data), 2)]


def fnv1a32_ascii_many(values: Sequence[str], states: np.ndarray) -> np.ndarray:
    """``fnv1a32(values[i], states[i])`` for ASCII ``values``, one array operation per character position.

    A batch of results hashes each user three times; hashing them together costs a few array
    operations per character instead of a Python loop per byte of every id.
    """
    encoded = [value.encode() for value in values]
    lengths = np.fromiter(map(len, encoded), dtype=np.intp, count=len(encoded))
    width = int(lengths.max()) if len(encoded) else 0
    live = np.arange(width) < lengths[:, None]  # which (value, position) hold a character
    characters = np.zeros((len(encoded), width), dtype=np.uint64)
    characters[live] = np.frombuffer(b"".join(encoded), dtype=np.uint8)  # row-major, as joined
    hashes = states.astype(np.uint64)
    for position in range(width):
        # (< 2**32) * (< 2**25): no uint64 overflow before the mask.
        stepped = ((hashes ^ characters[:, position]) * _FNV_PRIME) & _MASK
        hashes = np.where(live[:, position], stepped, hashes)
    return hashes


def _continue_hashes(hashes: np.ndarray, suffix: str) -> np.ndarray:
    """``fnv1a32(value + suffix)`` from ``fnv1a32(value)`` for every value (FNV is a running state)."""
    for unit in _code_units(suffix):
        hashes = ((hashes ^ unit) * _FNV_PRIME) & _MASK
    return hashes


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

    def variant_indexes(self, user_ids: Sequence[str]) -> list[int | None]:
        """For each user, ``variant_index`` when ``in_slice``, else None: the same answers for a batch.

        ASCII ids are hashed together (``fnv1a32_ascii_many``); any other id one by one.
        """
        answers: list[int | None] = [None] * len(user_ids)
        positions = [i for i, user_id in enumerate(user_ids) if user_id.isascii()]
        for i, user_id in enumerate(user_ids):
            if not user_id.isascii():
                answers[i] = self.variant_index(user_id) if self.in_slice(user_id) else None
        if not positions:
            return answers
        ascii_ids = [user_ids[i] for i in positions]
        count = len(ascii_ids)
        plain = fnv1a32_ascii_many(ascii_ids, np.full(count, _FNV_OFFSET, dtype=np.uint64))
        namespace = _continue_hashes(plain, "__" + self.prompt_type)
        namespace_positions = (namespace % 1000) / 1000
        inside = (self.namespace_start <= namespace_positions) & (namespace_positions < self.namespace_end)
        seeded = fnv1a32_ascii_many(ascii_ids, np.full(count, self.seed_state, dtype=np.uint64))
        digits = [str(number) for number in seeded.tolist()]
        bucket = (fnv1a32_ascii_many(digits, np.full(count, _FNV_OFFSET, dtype=np.uint64)) % 10000) / 10000
        chosen = np.full(count, -1, dtype=np.intp)
        for index in range(len(self.ranges) - 1, -1, -1):  # the first range holding the bucket wins
            start, end = self.ranges[index]
            chosen[(start <= bucket) & (bucket < end)] = index
        for i, is_inside, index in zip(positions, inside.tolist(), chosen.tolist(), strict=True):
            answers[i] = index if is_inside else None
        return answers

    def assign(self, user_id: str) -> CompiledVariant | None:
        """The user's variant, or None when outside the slice (or with an empty id, like GrowthBook)."""
        if not user_id or not self.in_slice(user_id):
            return None
        index = self.variant_index(user_id)
        return self.variants[index] if index >= 0 else None
