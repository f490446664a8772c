"""Prompt resolution: which prompt a user gets now, recording the first exposure (buffered).

The hot path: it reads the process's compiled snapshot and writes nothing synchronously.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from experiments.assignment import namespace_hash
from experiments.services.exposures import exposure_record
from experiments.snapshot import get_snapshot


@dataclass(frozen=True, slots=True)
class Resolution:
    content: str | None
    in_experiment: bool
    experiment: str | None
    variant: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "in_experiment": self.in_experiment,
            "experiment": self.experiment,
            "variant": self.variant,
            "reason": self.reason,
        }


def prompt_resolve(*, user_id: str, prompt_type: str, default_prompt: str | None = None) -> Resolution:
    """The prompt ``user_id`` gets for ``prompt_type`` now; records the exposure when assigned."""
    experiments = get_snapshot().by_prompt_type.get(prompt_type)
    if not experiments:
        return Resolution(default_prompt, False, None, None, "no_running_experiment")
    if not user_id:
        return Resolution(default_prompt, False, None, None, "empty_user_id")
    position = namespace_hash(user_id, prompt_type)  # one hash for every slice of the prompt type
    for compiled in experiments:
        if not compiled.holds(position):
            continue
        if not compiled.running:
            return Resolution(default_prompt, False, None, None, "experiment_paused")
        index = compiled.variant_index(user_id)
        if index < 0:  # only if weights left a gap below 1, which normalised weights do not
            break
        variant = compiled.variants[index]
        exposure_record(experiment_id=compiled.id, variant_id=variant.id, user_id=user_id)
        return Resolution(variant.content, True, compiled.key, variant.key, "assigned")
    return Resolution(default_prompt, False, None, None, "outside_experiments")
