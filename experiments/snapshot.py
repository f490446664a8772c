"""The per-process snapshot of live experiments and of the prompt registry that the resolve hot path reads.

A process keeps the compiled running and paused experiments, and every label of the prompt
registry (``prompts.snapshot``), in memory and, at most once every
``EXPERIMENTS_SNAPSHOT_CHECK_SECONDS``, reads one version key from the shared cache; any change
to an experiment or to the registry writes a new version (after its transaction commits), so every process rebuilds
within about a second and steady-state resolves touch neither the database nor, between checks,
Redis. If the cache is down the current snapshot keeps serving and is re-checked next interval.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from agentplatform import counters
from agentplatform.etags import body_etag
from experiments.assignment import CompiledExperiment, CompiledVariant

logger = logging.getLogger(__name__)

VERSION_CACHE_KEY = "experiments:version"


@dataclass(frozen=True)
class Snapshot:
    version: str
    # prompt type -> its live experiments, ordered by namespace slice
    by_prompt_type: dict[str, tuple[CompiledExperiment, ...]]
    by_key: dict[str, CompiledExperiment]
    features_payload: dict = field(default_factory=dict)
    # The payload encoded once and its strong ETag (the growthbook-features endpoint serves these).
    features_body: bytes = b"{}"
    features_etag: str = ""
    # prompt key -> label (``latest`` included) -> prompts.snapshot.CompiledLabel
    prompts: dict[str, dict] = field(default_factory=dict)


class _State:
    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.checked_at = float("-inf")
        self.lock = threading.Lock()


_state = _State()


def _read_version() -> str | None:
    """The shared version, creating one when the key is missing (first start, cache flushed)."""
    version = cache.get(VERSION_CACHE_KEY)
    if version is None:
        cache.add(VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None)
        version = cache.get(VERSION_CACHE_KEY)
    return version


def _build(version: str) -> Snapshot:
    from experiments.growthbook import features_payload
    from experiments.models import Experiment, ExperimentStatus
    from prompts.snapshot import compile_registry

    experiments = (
        Experiment.objects.filter(status__in=(ExperimentStatus.RUNNING, ExperimentStatus.PAUSED))
        .exclude(namespace_start=None)
        .prefetch_related("variants__prompt_version")
        .order_by("target_prompt_type", "namespace_start")
    )
    by_prompt_type: dict[str, list[CompiledExperiment]] = {}
    by_key: dict[str, CompiledExperiment] = {}
    for experiment in experiments:
        compiled = compile_experiment(experiment)
        by_prompt_type.setdefault(experiment.target_prompt_type, []).append(compiled)
        by_key[experiment.key] = compiled
    frozen = {prompt_type: tuple(items) for prompt_type, items in by_prompt_type.items()}
    prompts = compile_registry()
    payload = features_payload(frozen, prompts)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Snapshot(
        version=version,
        by_prompt_type=frozen,
        by_key=by_key,
        features_payload=payload,
        features_body=body,
        features_etag=body_etag(body),
        prompts=prompts,
    )


def compile_experiment(experiment) -> CompiledExperiment:
    """The immutable bucketing form of an experiment (its variants in GrowthBook's order)."""
    from experiments.models import ExperimentStatus

    variants = sorted(experiment.variants.all(), key=lambda v: (v.position, v.id))
    return CompiledExperiment.build(
        id=experiment.id,
        key=experiment.key,
        seed=experiment.hash_seed,
        prompt_type=experiment.target_prompt_type,
        namespace_start=float(experiment.namespace_start if experiment.namespace_start is not None else 0),
        namespace_end=float(experiment.namespace_end if experiment.namespace_end is not None else 0),
        weights=[v.weight for v in variants],
        variants=[compile_variant(experiment.target_prompt_type, v) for v in variants],
        running=experiment.status == ExperimentStatus.RUNNING,
    )


def compile_variant(prompt_type: str, variant) -> CompiledVariant:
    """A variant with its prompt version (number and config) as resolve answers it."""
    version = variant.prompt_version
    number = version.version if version is not None else None
    config = dict(version.config or {}) if version is not None else {}
    return CompiledVariant(
        id=variant.id,
        key=variant.key,
        content=variant.content,
        version=number,
        prompt={"key": prompt_type, "version": number, "label": None, "content": variant.content, "config": config},
    )


def get_snapshot() -> Snapshot:
    """The current snapshot; re-checks the shared version at most once per check interval."""
    now = time.monotonic()
    snapshot = _state.snapshot
    if snapshot is not None and now - _state.checked_at < settings.EXPERIMENTS_SNAPSHOT_CHECK_SECONDS:
        return snapshot
    # One thread re-checks; the others keep answering from the current snapshot meanwhile instead
    # of queueing behind a Redis round trip (only a process with no snapshot yet waits).
    if not _state.lock.acquire(blocking=snapshot is None):
        return snapshot
    try:
        snapshot = _state.snapshot
        if snapshot is not None and now - _state.checked_at < settings.EXPERIMENTS_SNAPSHOT_CHECK_SECONDS:
            return snapshot
        try:
            version = _read_version()
        except Exception:  # a cache outage must not stop resolves: keep serving what we have
            logger.warning("experiments: version check failed; serving the current snapshot", exc_info=True)
            counters.increment("experiments_snapshot_check_failures")
            version = None
        if snapshot is not None and (version is None or version == snapshot.version):
            _state.checked_at = now
            return snapshot
        # Read the version before the database: a change committed in between leaves this
        # snapshot labelled with the older version, so the next check rebuilds again.
        snapshot = _build(version or f"local-{uuid.uuid4().hex}")
        _state.snapshot = snapshot
        # Even when the cache is down: a rebuild per call would turn a Redis outage into a
        # database query per resolve. The "local-" label differs from any shared version.
        _state.checked_at = now
        return snapshot
    finally:
        _state.lock.release()


def snapshot_invalidate() -> None:
    """Publish a new version once the current transaction commits (every process rebuilds)."""

    def publish() -> None:
        _state.checked_at = float("-inf")
        try:
            cache.set(VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None)
        except Exception:
            # The other processes keep their snapshot until the cache is back; this one rebuilds now.
            logger.error("experiments: could not publish a new snapshot version", exc_info=True)
            counters.increment("experiments_snapshot_publish_failures")
            _state.snapshot = None

    transaction.on_commit(publish)


def snapshot_reset() -> None:
    """Forget this process's snapshot (tests, and after a fork)."""
    with _state.lock:
        _state.snapshot = None
        _state.checked_at = float("-inf")
