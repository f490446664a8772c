"""The downloaded payload, compiled once, and the answer for one user from memory.

The platform's ``GET /api/v1/experiments/growthbook-features`` is a GrowthBook features payload:
one feature per prompt key whose ``defaultValue`` is the text under the ``production`` label and
whose experiment rules are the running experiments (seed, hashVersion, coverage, weights,
namespace slice, variations, and in ``meta`` each variation's key, prompt version and config).
Beside ``features`` it carries ``prompts``: each prompt's production version and config.
``Rules.evaluate`` answers what the platform's ``POST /prompts/resolve`` answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agentops_client.bucketing import _FNV_OFFSET, bucket_ranges, fnv1a32, gb_hash

PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class Variation:
    key: str
    content: Any
    version: int | None
    config: Mapping[str, Any]  # read-only: every answer of the variation shares it


@dataclass(frozen=True, slots=True)
class Rule:
    """One running experiment on a prompt key."""

    experiment: str
    seed: str
    hash_version: int
    namespace: tuple[str, float, float] | None
    ranges: tuple[tuple[float, float], ...]
    variations: tuple[Variation, ...]
    seed_state: int  # FNV-1a state after the seed (hashVersion 2 hashes seed + user)

    def variation_for(self, user_id: str, namespace_hash: int) -> Variation | None:
        """The user's variation, or None when the user is outside this experiment.

        ``namespace_hash``: ``fnv1a32(user_id)``, shared by every rule of the key (the namespace
        seed ``"__" + name`` continues it).
        """
        namespace = self.namespace
        if namespace is not None:
            position = (fnv1a32("__" + namespace[0], namespace_hash) % 1000) / 1000
            if not namespace[1] <= position < namespace[2]:
                return None
        if self.hash_version == 2:
            n = (fnv1a32(str(fnv1a32(user_id, self.seed_state))) % 10000) / 10000
        else:
            hashed = gb_hash(self.seed, user_id, self.hash_version)
            if hashed is None:
                return None
            n = hashed
        for index, (start, end) in enumerate(self.ranges):
            if start <= n < end:
                return self.variations[index]
        return None


@dataclass(frozen=True, slots=True)
class Feature:
    key: str
    production: Any  # the text under ``production`` (None: the caller's default)
    production_version: int | None
    production_config: Mapping[str, Any]
    rules: tuple[Rule, ...]


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _rule(raw: dict[str, Any]) -> Rule | None:
    """A rule this client can evaluate exactly, or None (skipped, as GrowthBook skips what does not apply)."""
    variations = raw.get("variations")
    key = raw.get("key")
    if not isinstance(variations, list) or not variations or not isinstance(key, str):
        return None
    if raw.get("condition") or raw.get("filters") or raw.get("force") is not None:
        return None  # targeting the platform does not emit: never guessed at
    if raw.get("hashAttribute", "id") != "id":
        return None
    metas = raw.get("meta") if isinstance(raw.get("meta"), list) else []
    compiled = []
    for index, content in enumerate(variations):
        meta = metas[index] if index < len(metas) and isinstance(metas[index], dict) else {}
        version = meta.get("version")
        config = meta.get("config")
        compiled.append(
            Variation(
                key=str(meta.get("key", index)),
                content=content,
                version=version if isinstance(version, int) and not isinstance(version, bool) else None,
                config=MappingProxyType(config if isinstance(config, dict) else {}),
            )
        )
    namespace = raw.get("namespace")
    slice_: tuple[str, float, float] | None = None
    if isinstance(namespace, list) and len(namespace) == 3 and isinstance(namespace[0], str):
        slice_ = (namespace[0], _number(namespace[1], 0.0), _number(namespace[2], 1.0))
    seed = raw.get("seed") if isinstance(raw.get("seed"), str) else key
    hash_version = raw.get("hashVersion", 1)
    return Rule(
        experiment=key,
        seed=seed,
        hash_version=hash_version if hash_version in (1, 2) else 1,
        namespace=slice_,
        ranges=tuple(bucket_ranges(len(compiled), _number(raw.get("coverage"), 1.0), raw.get("weights"))),
        variations=tuple(compiled),
        seed_state=fnv1a32(seed),
    )


def compile_payload(payload: Any) -> dict[str, Feature]:
    """``{prompt key: Feature}`` of a features payload (anything malformed is left out, never raised)."""
    features = payload.get("features") if isinstance(payload, dict) else None
    prompts = payload.get("prompts") if isinstance(payload, dict) else None
    if not isinstance(features, dict):
        raise ValueError("not a features payload")
    prompts = prompts if isinstance(prompts, dict) else {}
    compiled: dict[str, Feature] = {}
    for key, feature in features.items():
        if not isinstance(feature, dict):
            continue
        rules = feature.get("rules") if isinstance(feature.get("rules"), list) else []
        production = prompts.get(key, {}).get(PRODUCTION) if isinstance(prompts.get(key), dict) else None
        production = production if isinstance(production, dict) else {}
        compiled[key] = Feature(
            key=key,
            production=feature.get("defaultValue"),
            production_version=production.get("version"),
            production_config=MappingProxyType(
                production.get("config") if isinstance(production.get("config"), dict) else {}
            ),
            rules=tuple(rule for rule in map(_rule, (r for r in rules if isinstance(r, dict))) if rule is not None),
        )
    return compiled


def namespace_hash(user_id: str) -> int:
    """The FNV-1a state after ``user_id``: every namespace of the key continues from it."""
    return fnv1a32(user_id, _FNV_OFFSET)
