"""Promotion: an experiment's winning variant becomes the prompt's ``production`` version.

One transaction moves the label (``prompts.services.prompt_label_move``: its permission check, its
move row and its ``prompt.label_moved`` event), stops the experiment (``experiment.stopped``) and
records ``experiment.promoted``; every web process sees the new production version and the
stopped experiment together, at the next snapshot check.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from agentplatform.errors import Conflict, ValidationFailed
from audit.services import audit_log
from experiments.models import Experiment
from experiments.services.lifecycle import RESOURCE_TYPE, experiment_stop
from prompts import services as prompt_services
from prompts.models import PRODUCTION


@dataclass(frozen=True)
class Promotion:
    experiment: Experiment
    variant: str
    prompt: str
    label: str
    from_version: int | None
    version: int


@transaction.atomic
def experiment_promote(*, actor, experiment: Experiment, variant_key: str, request=None) -> Promotion:
    """Move ``production`` to ``variant_key``'s version and stop the experiment (running or paused only).

    ``Conflict`` (409) in any other state, ``PermissionDenied`` (403) when ``actor`` may not move
    the prompt's protected ``production`` label.
    """
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if not experiment.is_live:
        raise Conflict(
            f"Only a running or paused experiment can be promoted (this one is {experiment.status}).",
            code="invalid_transition",
        )
    variant = experiment.variants.filter(key=variant_key).select_related("prompt_version__prompt").first()
    if variant is None:
        known = ", ".join(experiment.variants.order_by("position").values_list("key", flat=True))
        raise ValidationFailed(
            f"'{experiment.key}' has no variant '{variant_key}'.", details={"variant": [f"One of: {known}."]}
        )
    if variant.prompt_version is None:  # a started experiment's variants all have one; rows made around the services
        raise Conflict(f"Variant '{variant_key}' names no prompt version to promote.", code="no_prompt_version")
    version = variant.prompt_version
    move = prompt_services.prompt_label_move(
        actor=actor,
        prompt=version.prompt,
        label=PRODUCTION,
        version=version.version,
        reason=f"promoted from experiment {experiment.key}, variant {variant_key}",
        request=request,
    )
    # The move says where production was (under the prompt's row lock); None: it already served this.
    from_version = move.from_version if move is not None else version.version
    experiment = experiment_stop(actor=actor, experiment=experiment, request=request)
    audit_log(
        actor=actor,
        action="experiment.promoted",
        resource_type=RESOURCE_TYPE,
        resource_id=experiment.key,
        severity="warning",
        details={
            "variant": variant_key,
            "prompt": version.prompt.key,
            "label": PRODUCTION,
            "from_version": from_version,
            "to_version": version.version,
        },
        request=request,
    )
    return Promotion(
        experiment=experiment,
        variant=variant_key,
        prompt=version.prompt.key,
        label=PRODUCTION,
        from_version=from_version,
        version=version.version,
    )
