"""Writes: the experiment life cycle (each with ``actor=`` and its audit row) and prompt resolution."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from agentplatform.errors import Conflict, NotFound
from audit.services import audit_log
from experiments import namespaces
from experiments.assignment import namespace_hash
from experiments.exposures import exposure_record
from experiments.models import Experiment, ExperimentStatus, Variant
from experiments.snapshot import get_snapshot, snapshot_invalidate
from experiments.validation import RESERVED_KEYS, experiment_validate

RESOURCE_TYPE = "experiment"
EXPERIMENT_FIELDS = (
    "name",
    "hypothesis",
    "target_prompt_type",
    "primary_metric",
    "guardrail_metrics",
    "user_percentage",
    "sequential",
    "target_mde",
    "seed",
)
DEFAULT_TARGET_MDE = 0.05


# --- life cycle ---------------------------------------------------------------------------------


def _apply_fields(experiment: Experiment, data: dict[str, Any]) -> list[str]:
    changed = []
    for field in EXPERIMENT_FIELDS:
        if field not in data:
            continue
        value = data[field]
        if field == "user_percentage":
            value = Decimal(str(value))
        elif field == "hypothesis" and value is None:
            value = ""
        elif field == "guardrail_metrics":
            value = list(value or [])
        elif field == "target_mde" and value is None:
            value = DEFAULT_TARGET_MDE
        elif field == "sequential":
            value = bool(value)
        elif field == "seed":
            value = value or experiment.seed or experiment.key
        if getattr(experiment, field) != value:
            setattr(experiment, field, value)
            changed.append(field)
    return changed


def _replace_variants(experiment: Experiment, variants: list[dict[str, Any]]) -> None:
    """Replace the variant list, keeping rows (and their ids) of keys that remain."""
    existing = {variant.key: variant for variant in experiment.variants.all()}
    keep = {v["key"] for v in variants}
    Variant.objects.filter(experiment=experiment).exclude(key__in=keep).delete()
    for position, data in enumerate(variants):
        variant = existing.get(data["key"]) or Variant(experiment=experiment, key=data["key"])
        variant.name = data.get("name") or ""
        variant.content = data["content"]
        variant.weight = float(data.get("weight", 1))
        variant.is_control = bool(data.get("is_control"))
        variant.position = position
        variant.save()


@transaction.atomic
def experiment_create(*, actor, data: dict[str, Any], request=None) -> Experiment:
    """Create a draft experiment with its variants from the API body shape."""
    experiment_validate(data)
    if Experiment.objects.filter(key=data["key"]).exists():
        raise Conflict(f"An experiment with key '{data['key']}' already exists.", code="duplicate_key")
    experiment = Experiment(key=data["key"], created_by=actor if getattr(actor, "pk", None) else None)
    _apply_fields(experiment, data)
    experiment.seed = data.get("seed") or data["key"]
    experiment.full_clean(exclude=["created_by"])
    experiment.save()
    _replace_variants(experiment, data["variants"])
    audit_log(
        actor=actor,
        action="experiment.created",
        resource_type=RESOURCE_TYPE,
        resource_id=experiment.key,
        details={"prompt_type": experiment.target_prompt_type, "variants": [v["key"] for v in data["variants"]]},
        request=request,
    )
    return experiment


@transaction.atomic
def experiment_update(*, actor, experiment: Experiment, data: dict[str, Any], request=None) -> Experiment:
    """Change an experiment; assignment fields and variants are frozen once it has started."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    experiment_validate(data, instance=experiment)
    changed = _apply_fields(experiment, data)
    if changed:
        experiment.full_clean(exclude=["created_by"])
        experiment.save()
    if "variants" in data and experiment.status == ExperimentStatus.DRAFT:
        _replace_variants(experiment, data["variants"])
        changed.append("variants")
    elif "variants" in data:
        # Names may still change on a started experiment (validation kept everything else equal).
        for variant_data in data["variants"]:
            Variant.objects.filter(experiment=experiment, key=variant_data["key"]).exclude(
                name=variant_data.get("name") or ""
            ).update(name=variant_data.get("name") or "")
    if changed:
        audit_log(
            actor=actor,
            action="experiment.updated",
            resource_type=RESOURCE_TYPE,
            resource_id=experiment.key,
            details={"fields": changed},
            request=request,
        )
        if experiment.is_live:
            snapshot_invalidate()
    return experiment


def _live_slices(prompt_type: str, *, exclude_pk: int | None) -> list[namespaces.Slice]:
    # Locking every experiment row of the prompt type serialises concurrent starts on it.
    rows = (
        Experiment.objects.select_for_update()
        .filter(target_prompt_type=prompt_type)
        .exclude(pk=exclude_pk)
        .order_by("pk")
    )
    return [
        namespaces.Slice(row.namespace_start, row.namespace_end, row.key)
        for row in rows
        if row.is_live and row.namespace_start is not None
    ]


@transaction.atomic
def experiment_start(*, actor, experiment: Experiment, request=None) -> Experiment:
    """Start a draft (allocating its namespace slice) or resume a paused experiment."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status == ExperimentStatus.PAUSED:
        experiment.status = ExperimentStatus.RUNNING
        experiment.save(update_fields=["status", "updated_at"])
        action = "experiment.resumed"
    elif experiment.status == ExperimentStatus.DRAFT:
        experiment_validate(_as_data(experiment))
        taken = _live_slices(experiment.target_prompt_type, exclude_pk=experiment.pk)
        width = namespaces.width_of(experiment.user_percentage)
        slot = namespaces.first_fit(taken, width)
        if slot is None:
            raise Conflict(
                f"Prompt type '{experiment.target_prompt_type}' has no room for "
                f"{experiment.user_percentage.normalize():f}% of its users. "
                f"Free space: {namespaces.describe_free_space(taken)}. "
                "Lower the percentage, or stop or shrink another experiment on this prompt type.",
                code="namespace_full",
                details={
                    "prompt_type": experiment.target_prompt_type,
                    "needed": float(width),
                    "free": [[float(g.start), float(g.end)] for g in namespaces.free_slices(taken)],
                    "taken": [{"experiment": s.owner, "start": float(s.start), "end": float(s.end)} for s in taken],
                },
            )
        experiment.namespace_start, experiment.namespace_end = slot.start, slot.end
        experiment.status = ExperimentStatus.RUNNING
        experiment.started_at = timezone.now()
        experiment.save(update_fields=["status", "namespace_start", "namespace_end", "started_at", "updated_at"])
        action = "experiment.started"
    else:
        raise Conflict(f"A {experiment.status} experiment cannot be started.", code="invalid_transition")
    audit_log(
        actor=actor,
        action=action,
        resource_type=RESOURCE_TYPE,
        resource_id=experiment.key,
        details={"namespace": [str(experiment.namespace_start), str(experiment.namespace_end)]},
        request=request,
    )
    snapshot_invalidate()
    return experiment


@transaction.atomic
def experiment_pause(*, actor, experiment: Experiment, request=None) -> Experiment:
    """Pause a running experiment: its users get the default prompt; it keeps its slice."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != ExperimentStatus.RUNNING:
        raise Conflict(
            f"Only a running experiment can be paused (this one is {experiment.status}).", code="invalid_transition"
        )
    experiment.status = ExperimentStatus.PAUSED
    experiment.save(update_fields=["status", "updated_at"])
    audit_log(
        actor=actor,
        action="experiment.paused",
        resource_type=RESOURCE_TYPE,
        resource_id=experiment.key,
        request=request,
    )
    snapshot_invalidate()
    return experiment


@transaction.atomic
def experiment_stop(*, actor, experiment: Experiment, request=None) -> Experiment:
    """Complete a running or paused experiment for good; its slice becomes free."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if not experiment.is_live:
        raise Conflict(
            f"Only a running or paused experiment can be stopped (this one is {experiment.status}).",
            code="invalid_transition",
        )
    experiment.status = ExperimentStatus.COMPLETED
    experiment.stopped_at = timezone.now()
    experiment.save(update_fields=["status", "stopped_at", "updated_at"])
    audit_log(
        actor=actor,
        action="experiment.stopped",
        resource_type=RESOURCE_TYPE,
        resource_id=experiment.key,
        request=request,
    )
    snapshot_invalidate()
    return experiment


@transaction.atomic
def experiment_copy(
    *, actor, experiment: Experiment, key: str | None = None, name: str | None = None, request=None
) -> Experiment:
    """A new draft with the same settings and variants, a new key and (so users reshuffle) a new seed."""
    if key is None:
        for suffix in itertools.count(2):
            key = f"{experiment.key[:90]}-v{suffix}"
            if not Experiment.objects.filter(key=key).exists():
                break
    data = _as_data(experiment)
    data.update(key=key, name=name or f"{experiment.name} (copy)", seed="")
    copy = experiment_create(actor=actor, data=data, request=request)
    audit_log(
        actor=actor,
        action="experiment.copied",
        resource_type=RESOURCE_TYPE,
        resource_id=copy.key,
        details={"source": experiment.key},
        request=request,
    )
    return copy


@transaction.atomic
def experiment_delete(*, actor, experiment: Experiment, request=None) -> None:
    """Delete a draft; an experiment that ever ran is kept (its data is the record)."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != ExperimentStatus.DRAFT:
        raise Conflict("Only a draft can be deleted; stop the experiment instead.", code="invalid_transition")
    key = experiment.key
    experiment.delete()
    audit_log(actor=actor, action="experiment.deleted", resource_type=RESOURCE_TYPE, resource_id=key, request=request)


def _as_data(experiment: Experiment) -> dict[str, Any]:
    """An experiment in the API body's shape (for validation and copying)."""
    return {
        "key": experiment.key,
        "name": experiment.name,
        "hypothesis": experiment.hypothesis,
        "target_prompt_type": experiment.target_prompt_type,
        "primary_metric": experiment.primary_metric,
        "guardrail_metrics": list(experiment.guardrail_metrics or []),
        "user_percentage": experiment.user_percentage,
        "sequential": experiment.sequential,
        "target_mde": experiment.target_mde,
        "seed": experiment.seed,
        "variants": [
            {"key": v.key, "name": v.name, "content": v.content, "weight": v.weight, "is_control": v.is_control}
            for v in experiment.variants.order_by("position", "id")
        ],
    }


def experiment_get(*, key: str) -> Experiment:
    if key in RESERVED_KEYS:
        raise NotFound(f"No experiment '{key}'.")
    try:
        return Experiment.objects.get(key=key)
    except Experiment.DoesNotExist:
        raise NotFound(f"No experiment '{key}'.") from None


# --- resolve ------------------------------------------------------------------------------------


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
