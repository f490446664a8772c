"""The running experiments as a GrowthBook SDK features payload.

One feature per prompt type: its default value is the text under the registry's ``production``
label (null when there is none: the caller's own default prompt) and each running experiment on
that prompt type is one experiment rule — its key, seed, hashVersion 2, coverage 1, normalised
weights, the namespace slice it owns, the variant contents as variations and, in each
variation's ``meta``, its key and the prompt version number it serves. Paused experiments are
left out, so their users fall through to the default exactly as ``prompt_resolve`` answers
(without a ``label``). A stock GrowthBook SDK evaluating ``feature(prompt_type)`` with attribute
``id = user_id`` gets the server's answer.
"""

from __future__ import annotations

from experiments.assignment import CompiledExperiment
from prompts.models import PRODUCTION


def experiment_rule(compiled: CompiledExperiment) -> dict:
    return {
        "id": f"exp-{compiled.key}",
        "key": compiled.key,
        "seed": compiled.seed,
        "hashAttribute": "id",
        "hashVersion": 2,
        "coverage": 1,
        "weights": list(compiled.weights),
        "namespace": [compiled.prompt_type, compiled.namespace_start, compiled.namespace_end],
        "variations": [variant.content for variant in compiled.variants],
        # The registry's version number and config of each variation's content (GrowthBook passes
        # meta through; the agent SDK answers them as resolve does).
        "meta": [
            {"key": v.key, "name": v.key, "version": v.version, "config": (v.prompt or {}).get("config", {})}
            for v in compiled.variants
        ],
    }


def features_payload(
    by_prompt_type: dict[str, tuple[CompiledExperiment, ...]], prompts: dict[str, dict] | None = None
) -> dict:
    """``{"features": {prompt_type: {"defaultValue": ..., "rules": [...]}}, "prompts": {...}}``: running
    experiments' types and the registry's prompts with a ``production`` label (``prompts``: the
    snapshot's compiled registry).

    ``prompts`` (beside ``features``, which GrowthBook SDKs ignore) names, per prompt key, the
    version number and config of the text ``defaultValue`` carries, so a client evaluating locally
    answers a user outside every experiment exactly as resolve does (its ``prompt``).
    """
    prompts = prompts or {}
    features = {}
    versions = {}
    for prompt_type in sorted({*by_prompt_type, *prompts}):
        rules = [experiment_rule(compiled) for compiled in by_prompt_type.get(prompt_type, ()) if compiled.running]
        production = prompts.get(prompt_type, {}).get(PRODUCTION)
        if rules or production is not None:
            features[prompt_type] = {"defaultValue": production.content if production else None, "rules": rules}
        if production is not None:
            versions[prompt_type] = {PRODUCTION: {"version": production.version, "config": production.config}}
    return {"features": features, "prompts": versions}
