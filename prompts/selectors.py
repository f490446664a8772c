"""Reads of the registry for the API, the admin and the services (never a write)."""

from __future__ import annotations

from django.db.models import Count, Max, Prefetch, Q, QuerySet

from agentplatform.errors import NotFound
from prompts.models import Prompt, PromptLabel, PromptLabelMove, PromptVersion


def prompt_get(*, key: str) -> Prompt:
    """The prompt ``key``; ``NotFound`` (404) when there is none."""
    try:
        return Prompt.objects.get(key=key)
    except Prompt.DoesNotExist:
        raise NotFound(f"No prompt '{key}'.") from None


def _labels_prefetch() -> Prefetch:
    return Prefetch("labels", queryset=PromptLabel.objects.select_related("version").order_by("name"))


def prompt_list(*, search: str | None = None) -> QuerySet[Prompt]:
    """Prompts by key with their number of versions, latest version number and labels (prefetched)."""
    queryset = Prompt.objects.annotate(
        version_count=Count("versions"), latest_version=Max("versions__version")
    ).prefetch_related(_labels_prefetch())
    if search:
        queryset = queryset.filter(Q(key__icontains=search) | Q(description__icontains=search))
    return queryset.order_by("key")


def prompt_detail(*, key: str) -> Prompt:
    """``prompt_get`` with what ``prompt_list`` annotates (version count, latest version, labels)."""
    prompt = prompt_list().filter(key=key).first()
    if prompt is None:
        raise NotFound(f"No prompt '{key}'.")
    return prompt


def prompt_label_target(*, prompt: Prompt, label: str) -> PromptVersion | None:
    """The version stored label ``label`` points at (None when the prompt has no such label)."""
    row = PromptLabel.objects.filter(prompt=prompt, name=label).select_related("version").first()
    return row.version if row is not None else None


def prompt_latest_version(*, prompt: Prompt) -> PromptVersion | None:
    return PromptVersion.objects.filter(prompt=prompt).order_by("-version").first()


def prompt_versions(*, prompt: Prompt) -> QuerySet[PromptVersion]:
    """Newest first, with their author and the labels pointing at them."""
    return (
        PromptVersion.objects.filter(prompt=prompt)
        .select_related("prompt", "created_by")
        .prefetch_related(Prefetch("labels", queryset=PromptLabel.objects.order_by("name")))
        .order_by("-version")
    )


# PostgreSQL's integer: a larger number in a URL names no version (and would not fit the query).
VERSION_MAX = 2**31 - 1


def prompt_version_get(*, prompt: Prompt, version: int) -> PromptVersion:
    if not 1 <= version <= VERSION_MAX:
        raise NotFound(f"Prompt '{prompt.key}' has no version {version}.")
    try:
        return prompt_versions(prompt=prompt).get(version=version)
    except PromptVersion.DoesNotExist:
        raise NotFound(f"Prompt '{prompt.key}' has no version {version}.") from None


def prompt_label_history(*, prompt: Prompt, label: str | None = None) -> QuerySet[PromptLabelMove]:
    """Moves, newest first; of one label when ``label`` is given."""
    queryset = PromptLabelMove.objects.filter(prompt=prompt)
    if label is not None:
        queryset = queryset.filter(label=label)
    return queryset.order_by("-moved_at", "-id")
