"""Which experiment and variant a span belongs to (docs/traces.md, "Experiment link").

Explicit attributes first: ``agentops.experiment`` (an experiment key), ``agentops.variant`` (a
variant key of it) and ``agentops.prompt_version`` (a version number of the prompt named by
``agentops.prompt``, else of the experiment's prompt type) — what the SDK sets on the current span.
Otherwise the user's exposure: the running (or paused) experiment on the span's prompt type
(``agentops.prompt``) in which the span's user was exposed, and the variant they were exposed to.

The rules, in order, for one span:

1. ``agentops.experiment`` names the experiment: a live one from the process's snapshot of running
   and paused experiments (``experiments.snapshot``), else a completed one from the database (late
   spans of a finished run still belong to it). A draft or unknown key: no link.
2. The variant: ``agentops.variant`` (an unknown key: no link); else the user's ``Exposure`` in
   that experiment; else, in a *running* experiment, the variant the user's assignment computes
   (``CompiledExperiment.assign``: what resolve answered them, and what their exposure will say
   once the buffered exposure writer flushes it — a span can arrive before that row exists).
3. Without ``agentops.experiment``, the candidates are the live experiments on the span's prompt
   type (``agentops.prompt``; without it, or without a user, no link): the user's exposure in one
   of them (the latest if several), else the running experiment whose assignment holds the user.
   An ``agentops.variant`` that contradicts what was found: no link.
4. ``agentops.prompt_version``: the ``PromptVersion`` with that number of the span's prompt, else
   of the experiment's prompt type. An unknown number: no link; a variant found through the
   exposure or the assignment that serves another version: no link (the span did not use the
   variant's prompt — a paused experiment's users get the production label, for one). Without the
   attribute, the link carries the version the variant serves.

An unknown key is never an error: the span is stored without a link. ``experiment_links`` answers a
whole batch (the ingest calls it once per batch, one query per span), on its distinct queries only,
with a number of queries that does not grow with it: one for the exposures, one for the prompt
versions, and one for the experiment keys the snapshot of live experiments does not hold (two more
when that finds finished experiments: their variants and the variants' versions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from experiments.assignment import CompiledExperiment, CompiledVariant
from experiments.models import Experiment, ExperimentStatus, Exposure
from experiments.snapshot import compile_experiment, get_snapshot
from prompts.models import PromptVersion


@dataclass(frozen=True, slots=True)
class LinkQuery:
    user_id: str = ""
    prompt_type: str = ""  # agentops.prompt
    experiment_key: str = ""  # agentops.experiment
    variant_key: str = ""  # agentops.variant
    prompt_version: int | None = None  # agentops.prompt_version


@dataclass(frozen=True, slots=True)
class Link:
    experiment_id: int
    variant_id: int
    prompt_version_id: int | None = None


@dataclass(frozen=True, slots=True)
class _Found:
    """A span's experiment and variant before its prompt version is looked up."""

    experiment: CompiledExperiment
    variant: CompiledVariant
    explicit_variant: bool  # named by agentops.variant (not found through exposure or assignment)


def _experiments_by_key(keys: set[str], live: dict[str, CompiledExperiment]) -> dict[str, CompiledExperiment]:
    """The named experiments: live ones from the snapshot, finished ones in one query."""
    found = {key: live[key] for key in keys if key in live}
    missing = keys - found.keys()
    if missing:
        finished = (
            Experiment.objects.filter(key__in=missing, status=ExperimentStatus.COMPLETED)
            .prefetch_related("variants__prompt_version")
            .order_by()
        )
        # A prefetch is two more queries; only spans naming a finished experiment pay them.
        for experiment in finished:
            found[experiment.key] = compile_experiment(experiment)
    return found


def _exposures(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], tuple[int, datetime]]:
    """(experiment id, user id) -> (variant id, first seen) for the pairs that have an exposure."""
    if not pairs:
        return {}
    experiment_ids = {experiment_id for experiment_id, _user in pairs}
    user_ids = {user_id for _experiment, user_id in pairs}
    rows = (
        Exposure.objects.filter(experiment_id__in=experiment_ids, user_id__in=user_ids)
        .order_by()
        .values_list("experiment_id", "user_id", "variant_id", "first_seen_at")
    )
    return {(e, u): (v, seen) for e, u, v, seen in rows if (e, u) in pairs}


def _prompt_versions(pairs: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """(prompt key, version number) -> PromptVersion id, for the pairs that exist."""
    if not pairs:
        return {}
    condition = Q()
    for prompt_key, number in pairs:
        condition |= Q(prompt__key=prompt_key, version=number)
    rows = PromptVersion.objects.filter(condition).order_by().values_list("prompt__key", "version", "id")
    return {(key, number): version_id for key, number, version_id in rows}


def _variant_of(experiment: CompiledExperiment, variant_id: int) -> CompiledVariant | None:
    return next((v for v in experiment.variants if v.id == variant_id), None)


def _by_exposure_or_assignment(
    query: LinkQuery,
    candidates: Iterable[CompiledExperiment],
    exposures: dict[tuple[int, str], tuple[int, datetime]],
) -> _Found | None:
    """The user's exposure among ``candidates`` (the latest), else a running one's assignment."""
    exposed = [
        (exposures[(experiment.id, query.user_id)], experiment)
        for experiment in candidates
        if (experiment.id, query.user_id) in exposures
    ]
    if exposed:
        (variant_id, _seen), experiment = max(exposed, key=lambda item: item[0][1])
        variant = _variant_of(experiment, variant_id)
        return _Found(experiment, variant, explicit_variant=False) if variant is not None else None
    for experiment in candidates:
        if experiment.running:
            variant = experiment.assign(query.user_id)
            if variant is not None:
                return _Found(experiment, variant, explicit_variant=False)
    return None


def _find(
    query: LinkQuery,
    named: dict[str, CompiledExperiment],
    by_prompt_type: dict[str, tuple[CompiledExperiment, ...]],
    exposures: dict[tuple[int, str], tuple[int, datetime]],
) -> _Found | None:
    if query.experiment_key:
        experiment = named.get(query.experiment_key)
        if experiment is None:
            return None
        if query.variant_key:
            variant = next((v for v in experiment.variants if v.key == query.variant_key), None)
            return _Found(experiment, variant, explicit_variant=True) if variant is not None else None
        if not query.user_id:
            return None
        return _by_exposure_or_assignment(query, [experiment], exposures)
    if not query.prompt_type or not query.user_id:
        return None
    found = _by_exposure_or_assignment(query, by_prompt_type.get(query.prompt_type, ()), exposures)
    if found is not None and query.variant_key and found.variant.key != query.variant_key:
        return None
    return found


def _exposure_pairs(
    queries: Iterable[LinkQuery],
    named: dict[str, CompiledExperiment],
    by_prompt_type: dict[str, tuple[CompiledExperiment, ...]],
) -> set[tuple[int, str]]:
    """The (experiment, user) pairs whose exposure some query may need."""
    pairs: set[tuple[int, str]] = set()
    for query in queries:
        if not query.user_id:
            continue
        if query.experiment_key:
            if not query.variant_key and query.experiment_key in named:
                pairs.add((named[query.experiment_key].id, query.user_id))
        elif query.prompt_type:
            pairs.update((experiment.id, query.user_id) for experiment in by_prompt_type.get(query.prompt_type, ()))
    return pairs


def _well_formed(query: LinkQuery) -> bool:
    """A version number that is not a positive integer names no version (never an error)."""
    version = query.prompt_version
    return version is None or (isinstance(version, int) and not isinstance(version, bool) and version >= 1)


def _version_pair(query: LinkQuery, found: _Found) -> tuple[str, int] | None:
    """The (prompt key, number) the link's prompt version is: the span's, else the variant's."""
    if query.prompt_version is not None:
        return (query.prompt_type or found.experiment.prompt_type, query.prompt_version)
    if found.variant.version is not None:
        return (found.experiment.prompt_type, found.variant.version)
    return None


def experiment_links(queries: Sequence[LinkQuery]) -> list[Link | None]:
    """One answer per query, in order (None: the span links to no experiment)."""
    if not queries:
        return []
    distinct = list(dict.fromkeys(queries))
    snapshot = get_snapshot()
    named = _experiments_by_key({q.experiment_key for q in distinct if q.experiment_key}, snapshot.by_key)
    exposures = _exposures(_exposure_pairs(distinct, named, snapshot.by_prompt_type))
    found = {
        query: _find(query, named, snapshot.by_prompt_type, exposures) if _well_formed(query) else None
        for query in distinct
    }
    version_pairs = {query: _version_pair(query, hit) for query, hit in found.items() if hit is not None}
    version_ids = _prompt_versions({pair for pair in version_pairs.values() if pair is not None})

    answers: dict[LinkQuery, Link | None] = {}
    for query, hit in found.items():
        if hit is None:
            answers[query] = None
            continue
        pair = version_pairs[query]
        version_id = version_ids.get(pair) if pair is not None else None
        if query.prompt_version is not None:
            if version_id is None:
                answers[query] = None  # names a version that does not exist
                continue
            if not hit.explicit_variant and hit.variant.version not in (None, query.prompt_version):
                answers[query] = None  # the span used another prompt than the user's variant serves
                continue
        answers[query] = Link(experiment_id=hit.experiment.id, variant_id=hit.variant.id, prompt_version_id=version_id)
    return [answers[query] for query in queries]
