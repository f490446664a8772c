"""Reads of experiments (one by key, lists, namespace slices) for the API, the admin and the services."""

from __future__ import annotations

from django.db.models import QuerySet

from agentplatform.errors import NotFound
from experiments.models import Experiment, ExperimentStatus
from experiments.validation import RESERVED_KEYS


def experiment_get(*, key: str) -> Experiment:
    """The experiment with ``key``; ``NotFound`` (404) when there is none."""
    if key in RESERVED_KEYS:
        raise NotFound(f"No experiment '{key}'.")
    try:
        return Experiment.objects.prefetch_related("variants__prompt_version").get(key=key)
    except Experiment.DoesNotExist:
        raise NotFound(f"No experiment '{key}'.") from None


def experiment_list(*, status: str | None = None, prompt_type: str | None = None) -> QuerySet[Experiment]:
    queryset = Experiment.objects.prefetch_related("variants__prompt_version").order_by("-created_at", "-id")
    if status in ExperimentStatus.values:
        queryset = queryset.filter(status=status)
    if prompt_type:
        queryset = queryset.filter(target_prompt_type=prompt_type)
    return queryset


def namespace_slices(*, prompt_type: str | None = None) -> dict[str, list[Experiment]]:
    """Live experiments per prompt type, ordered by their slice (the admin's namespace view)."""
    queryset = Experiment.objects.filter(
        status__in=(ExperimentStatus.RUNNING, ExperimentStatus.PAUSED), namespace_start__isnull=False
    ).order_by("target_prompt_type", "namespace_start")
    if prompt_type:
        queryset = queryset.filter(target_prompt_type=prompt_type)
    slices: dict[str, list[Experiment]] = {}
    for experiment in queryset:
        slices.setdefault(experiment.target_prompt_type, []).append(experiment)
    return slices
