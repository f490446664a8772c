"""The running experiments as a GrowthBook SDK features payload.

One feature per prompt type: its default value is null (the caller's own default prompt) and
each running experiment on that prompt type is one experiment rule — its key, seed, hashVersion
2, coverage 1, normalised weights, the namespace slice it owns and the variant contents as
variations. Paused experiments are left out, so their users fall through to the default exactly
as ``prompt_resolve`` answers. A stock GrowthBook SDK evaluating ``feature(prompt_type)`` with
attribute ``id = user_id`` gets the server's answer.
"""

from __future__ import annotations

from experiments.assignment import CompiledExperiment


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
        "meta": [{"key": variant.key, "name": variant.key} for variant in compiled.variants],
    }


def features_payload(by_prompt_type: dict[str, tuple[CompiledExperiment, ...]]) -> dict:
    """``{"features": {prompt_type: {"defaultValue": None, "rules": [...]}}}`` for running experiments."""
    features = {}
    for prompt_type, experiments in sorted(by_prompt_type.items()):
        rules = [experiment_rule(compiled) for compiled in experiments if compiled.running]
        if rules:
            features[prompt_type] = {"defaultValue": None, "rules": rules}
    return {"features": features}
