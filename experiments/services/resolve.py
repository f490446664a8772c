"""Prompt resolution: which prompt a user gets now, recording the first exposure (buffered).

The order: the version of the user's variant when the user is in a running experiment on the
prompt type; else the version under the requested label of the registry (``production`` by
default); else the caller's ``default_prompt``. The hot path: it reads the process's compiled
snapshot (experiments and registry in one) and writes nothing synchronously.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentplatform.errors import ValidationFailed
from experiments.assignment import namespace_hash
from experiments.services.exposures import exposure_record
from experiments.snapshot import get_snapshot
from prompts.models import PRODUCTION
from prompts.templating import MissingVariables, compile_prompt

SOURCE_EXPERIMENT = "experiment"
SOURCE_LABEL = "label"
SOURCE_DEFAULT = "default"
# ``compiled`` is left out of the answer when no variables were sent.
_NOT_COMPILED = object()


@dataclass(frozen=True, slots=True)
class Resolution:
    content: str | None
    in_experiment: bool
    experiment: str | None
    variant: str | None
    reason: str
    source: str = SOURCE_DEFAULT
    # ``{key, version, label, content, config}`` shared with the snapshot: never mutated.
    prompt: dict[str, Any] | None = None
    compiled: Any = _NOT_COMPILED

    def as_dict(self) -> dict[str, Any]:
        answer = {
            "content": self.content,
            "in_experiment": self.in_experiment,
            "experiment": self.experiment,
            "variant": self.variant,
            "reason": self.reason,
            "source": self.source,
            "prompt": self.prompt,
        }
        if self.compiled is not _NOT_COMPILED:
            answer["compiled"] = self.compiled
        return answer


def _compiled(content: str | None, variables: Mapping[str, Any] | None) -> Any:
    if variables is None:
        return _NOT_COMPILED
    if content is None:
        return None
    try:
        return compile_prompt(content, variables)
    except MissingVariables as missing:
        raise ValidationFailed(
            f"The prompt needs variable(s) the request did not send: {', '.join(missing.names)}.",
            details={"variables": [f"Missing: {name}." for name in missing.names]},
        ) from None


def prompt_resolve(
    *,
    user_id: str,
    prompt_type: str,
    default_prompt: str | None = None,
    label: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Resolution:
    """The prompt ``user_id`` gets for ``prompt_type`` now; records the exposure when assigned.

    With ``variables`` the answer also carries ``compiled`` (``ValidationFailed`` naming any
    placeholder without a variable, before an exposure is recorded).
    """
    snapshot = get_snapshot()
    experiments = snapshot.by_prompt_type.get(prompt_type)
    if not experiments:
        reason = "no_running_experiment"
    elif not user_id:
        reason = "empty_user_id"
    else:
        reason = "outside_experiments"
        position = namespace_hash(user_id, prompt_type)  # one hash for every slice of the prompt type
        for compiled in experiments:
            if not compiled.holds(position):
                continue
            if not compiled.running:
                reason = "experiment_paused"
                break
            index = compiled.variant_index(user_id)
            if index < 0:  # only if weights left a gap below 1, which normalised weights do not
                break
            variant = compiled.variants[index]
            text = _compiled(variant.content, variables)
            exposure_record(experiment_id=compiled.id, variant_id=variant.id, user_id=user_id)
            return Resolution(
                variant.content, True, compiled.key, variant.key, "assigned", SOURCE_EXPERIMENT, variant.prompt, text
            )
    labels = snapshot.prompts.get(prompt_type)
    served = labels.get(label or PRODUCTION) if labels else None
    if served is not None:
        return Resolution(
            served.content,
            False,
            None,
            None,
            reason,
            SOURCE_LABEL,
            served.prompt,
            _compiled(served.content, variables),
        )
    return Resolution(
        default_prompt, False, None, None, reason, SOURCE_DEFAULT, None, _compiled(default_prompt, variables)
    )
