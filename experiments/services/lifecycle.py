"""Writes: the experiment life cycle, each with ``actor=`` and its audit row in the same transaction.

The services take validated input (``experiments.serializers``' ``validated_data``, or the admin
form's cleaned data: typed values in the body's shape) and own the business rules only: a key is
taken once, a started experiment's assignment and analysis plan are frozen, a start needs room in
its prompt type's namespace, only drafts are deleted. Variants serve versions of the registry's
prompt keyed by the prompt type: a number names one, inline content is stored as one (an identical
one reused), and a control naming neither gets the version under ``production`` at start.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agentplatform.errors import Conflict, ValidationFailed
from audit.services import audit_log
from experiments import namespaces
from experiments.models import EXPERIMENT_SETTINGS, Experiment, ExperimentStatus, Variant
from experiments.snapshot import snapshot_invalidate
from prompts import services as prompt_services
from prompts.models import PRODUCTION, Prompt, PromptVersion
from prompts.selectors import prompt_label_target

RESOURCE_TYPE = "experiment"
# Fields whose change would reshuffle users (or their namespace) once an experiment has started.
ASSIGNMENT_FIELDS = ("user_percentage", "seed", "target_prompt_type")
# Fields fixed once an experiment has started: the analysis plan is not changed after seeing data.
PLAN_FIELDS = ("primary_metric", "sequential")


def _set_settings(experiment: Experiment, data: Mapping[str, Any]) -> list[str]:
    """Assign the settings ``data`` carries; returns the names of those that changed."""
    changed = []
    for field in EXPERIMENT_SETTINGS:
        if field in data and getattr(experiment, field) != data[field]:
            setattr(experiment, field, data[field])
            changed.append(field)
    return changed


def _experiment_prompt(*, actor, experiment: Experiment, request=None) -> Prompt:
    """The registry's prompt for the experiment's prompt type, registered on the fly when missing."""
    prompt = Prompt.objects.filter(key=experiment.target_prompt_type).first()
    if prompt is None:
        try:
            prompt = prompt_services.prompt_create(actor=actor, key=experiment.target_prompt_type, request=request)
        except (Conflict, IntegrityError):  # registered meanwhile by a concurrent caller (its savepoint undone)
            prompt = Prompt.objects.get(key=experiment.target_prompt_type)
    return prompt


def _variant_versions(
    *, actor, experiment: Experiment, variants: list[Mapping[str, Any]], request=None
) -> list[PromptVersion | None]:
    """Each variant's prompt version: the number it names, or a version of its inline content
    (an identical version is reused); None for a control that names neither (set at start)."""
    if not any(v.get("prompt_version") is not None or v.get("content") for v in variants):
        return [None] * len(variants)
    prompt = _experiment_prompt(actor=actor, experiment=experiment, request=request)
    versions: list[PromptVersion | None] = []
    errors: dict[str, list[str]] = {}
    named = {v["prompt_version"] for v in variants if v.get("prompt_version") is not None}
    by_number = {pv.version: pv for pv in PromptVersion.objects.filter(prompt=prompt, version__in=named)}
    for index, data in enumerate(variants):
        number, content = data.get("prompt_version"), data.get("content")
        if number is not None:
            version = by_number.get(number)
            if version is None:
                errors[f"variants[{index}].prompt_version"] = [f"Prompt '{prompt.key}' has no version {number}."]
            elif content and content != version.content:
                errors[f"variants[{index}].content"] = [
                    f"Differs from version {number}'s text: give the version or the content, not both."
                ]
            versions.append(version)
        elif content:
            versions.append(
                prompt_services.prompt_version_create(
                    actor=actor,
                    prompt=prompt,
                    content=content,
                    message=f"experiment {experiment.key}, variant {data['key']}",
                    reuse_identical=True,
                    request=request,
                )
            )
        else:
            versions.append(None)
    if errors:
        raise ValidationFailed("The experiment is not valid.", details=errors)
    return versions


def _replace_variants(*, actor, experiment: Experiment, variants: list[Mapping[str, Any]], request=None) -> None:
    """Replace the variant list, keeping rows (and their ids) of keys that remain."""
    versions = _variant_versions(actor=actor, experiment=experiment, variants=variants, request=request)
    existing = {variant.key: variant for variant in experiment.variants.all()}
    keep = {v["key"] for v in variants}
    Variant.objects.filter(experiment=experiment).exclude(key__in=keep).delete()
    for position, (data, version) in enumerate(zip(variants, versions, strict=True)):
        variant = existing.get(data["key"]) or Variant(experiment=experiment, key=data["key"])
        variant.name = data.get("name", "")
        variant.prompt_version = version
        variant.content = version.content if version is not None else ""  # the version's text, denormalised
        variant.weight = data.get("weight", 1.0)
        variant.is_control = data.get("is_control", False)
        variant.position = position
        variant.save()


def _assigns_differently(variant: Variant, data: Mapping[str, Any]) -> bool:
    """Whether ``data`` would serve or assign users differently from ``variant`` (its name aside)."""
    if (variant.key, float(variant.weight), variant.is_control) != (
        data["key"],
        float(data.get("weight", 1.0)),
        bool(data.get("is_control")),
    ):
        return True
    number, content = data.get("prompt_version"), data.get("content")
    if number is not None and (variant.prompt_version is None or variant.prompt_version.version != number):
        return True
    return bool(content) and content != variant.content


def _variants_differ(experiment: Experiment, variants: list[Mapping[str, Any]]) -> bool:
    current = list(experiment.variants.select_related("prompt_version").order_by("position", "id"))
    return len(current) != len(variants) or any(
        _assigns_differently(variant, data) or variant.name != data.get("name", "")
        for variant, data in zip(current, variants, strict=False)
    )


def _frozen_changes(experiment: Experiment, data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The changes ``data`` would make to what a started experiment has frozen, as error details."""
    if experiment.status == ExperimentStatus.DRAFT:
        return {}
    errors = {
        field: [
            f"Cannot change once the experiment has started ({experiment.status}): it would reshuffle users "
            "or change the analysis plan. Copy it as a new experiment instead."
        ]
        for field in (*ASSIGNMENT_FIELDS, *PLAN_FIELDS)
        if field in data and data[field] != getattr(experiment, field)
    }
    if "variants" in data:
        current = list(experiment.variants.select_related("prompt_version").order_by("position", "id"))
        if len(current) != len(data["variants"]) or any(
            _assigns_differently(variant, item) for variant, item in zip(current, data["variants"], strict=False)
        ):
            errors["variants"] = [
                f"Cannot change variants, their content or weights once the experiment has started "
                f"({experiment.status}): it would reshuffle users. Copy it as a new experiment instead."
            ]
    return errors


@transaction.atomic
def experiment_create(*, actor, data: Mapping[str, Any], request=None) -> Experiment:
    """Create a draft experiment with its variants from validated input."""
    if Experiment.objects.filter(key=data["key"]).exists():
        raise Conflict(f"An experiment with key '{data['key']}' already exists.", code="duplicate_key")
    experiment = Experiment(key=data["key"], created_by=actor if getattr(actor, "pk", None) else None)
    _set_settings(experiment, data)
    experiment.seed = experiment.seed or experiment.key  # users are hashed by the key unless a seed is given
    experiment.full_clean(exclude=["created_by"])
    experiment.save()
    _replace_variants(actor=actor, experiment=experiment, variants=data["variants"], request=request)
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
def experiment_update(*, actor, experiment: Experiment, data: Mapping[str, Any], request=None) -> Experiment:
    """Change an experiment; assignment fields and variants are frozen once it has started."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if not data.get("seed", True):
        data = {name: value for name, value in data.items() if name != "seed"}  # an empty seed keeps the current one
    errors = _frozen_changes(experiment, data)
    if errors:
        raise ValidationFailed("The experiment is not valid.", details=errors)
    changed = _set_settings(experiment, data)
    if changed:
        experiment.full_clean(exclude=["created_by"])
        experiment.save()
    if "variants" in data and _variants_differ(experiment, data["variants"]):
        if experiment.status == ExperimentStatus.DRAFT:
            _replace_variants(actor=actor, experiment=experiment, variants=data["variants"], request=request)
        else:
            # Only names may change on a started experiment (the frozen check kept everything else equal).
            for variant_data in data["variants"]:
                Variant.objects.filter(experiment=experiment, key=variant_data["key"]).update(
                    name=variant_data.get("name", "")
                )
        changed.append("variants")
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
        _control_from_production(actor=actor, experiment=experiment, request=request)
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


def _control_from_production(*, actor, experiment: Experiment, request=None) -> None:
    """A control without a version gets the one under ``production`` (409 when there is none)."""
    controls = [v for v in experiment.variants.all() if v.prompt_version_id is None]
    if not controls:
        return
    prompt = _experiment_prompt(actor=actor, experiment=experiment, request=request)
    production = prompt_label_target(prompt=prompt, label=PRODUCTION)
    if production is None:
        raise Conflict(
            f"The control of '{experiment.key}' names no prompt version and prompt '{prompt.key}' has no "
            f"'{PRODUCTION}' version to default to: give the control a prompt_version or content.",
            code="no_production_version",
        )
    for variant in controls:
        variant.prompt_version = production
        variant.content = production.content
        variant.save(update_fields=["prompt_version", "content"])


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
    """An experiment as service input (for copying)."""
    return {
        "key": experiment.key,
        **{field: getattr(experiment, field) for field in EXPERIMENT_SETTINGS},
        "variants": [
            {
                "key": v.key,
                "name": v.name,
                "prompt_version": v.prompt_version.version if v.prompt_version is not None else None,
                "weight": v.weight,
                "is_control": v.is_control,
            }
            for v in experiment.variants.select_related("prompt_version").order_by("position", "id")
        ],
    }
