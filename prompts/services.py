"""Writes to the registry, each with ``actor=`` and its audit row in the same transaction.

Version numbers are assigned under a row lock on the prompt, so concurrent creators get 1..n
with neither gaps nor duplicates. Labels move only through ``prompt_label_move``: it records the
move (``PromptLabelMove``), audits ``prompt.label_moved`` and, once committed, tells every web
process to reload the registry (``prompts.snapshot.registry_changed``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import Max

from agentplatform.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from agentplatform.ingest import clean_text
from audit.services import actor_label_for, audit_log
from prompts.models import (
    CONFIG_MAX_BYTES,
    CONTENT_MAX_CHARS,
    DEFAULT_PROTECTED_LABELS,
    LABEL_HELP,
    LABEL_PATTERN,
    LATEST,
    MESSAGE_MAX_CHARS,
    PROMPT_KEY_HELP,
    PROMPT_KEY_PATTERN,
    RESERVED_PROMPT_KEYS,
    Prompt,
    PromptLabel,
    PromptLabelMove,
    PromptVersion,
    content_hash,
    default_protected_labels,
)
from prompts.snapshot import registry_changed

RESOURCE_TYPE = "prompt"
MOVE_PROTECTED_PERMISSION = "prompts.move_protected_label"
REASON_MAX_CHARS = 500
DESCRIPTION_MAX_CHARS = 2000
# Nesting of a version's config: model settings are a few levels deep; a bound keeps the checks
# below (and PostgreSQL's jsonb parser) far from any recursion limit.
CONFIG_MAX_DEPTH = 32


def _user(actor):
    """The user row to store for ``actor`` (None for system actors and anonymous callers)."""
    return actor if getattr(actor, "pk", None) else None


def key_errors(key: Any) -> list[str]:
    """Why ``key`` cannot name a prompt (empty when it can)."""
    if not isinstance(key, str) or not PROMPT_KEY_PATTERN.fullmatch(key):
        return [f"Use {PROMPT_KEY_HELP}"]
    if key in RESERVED_PROMPT_KEYS:
        return [f"'{key}' is reserved by the API; choose another key."]
    return []


def label_errors(label: Any) -> list[str]:
    """Why ``label`` cannot be moved (empty when it can)."""
    if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
        return [f"Use {LABEL_HELP}"]
    if label == LATEST:
        return ["'latest' always names the newest version; it cannot be moved."]
    return []


def _text_errors(value: Any, *, maximum: int) -> list[str]:
    """Why ``value`` cannot be stored as a text of at most ``maximum`` characters (empty when it can)."""
    if not isinstance(value, str):
        return ["A text."]
    if len(value) > maximum:
        return [f"At most {maximum} characters."]
    problem = clean_text(value)  # NUL or an unpaired surrogate: PostgreSQL refuses both
    return [problem] if problem else []


def _description_errors(description: Any) -> list[str]:
    return [] if description is None else _text_errors(description, maximum=DESCRIPTION_MAX_CHARS)


def _config_problem(config: dict) -> str | None:
    """Why ``config`` cannot be stored as jsonb (a NUL or surrogate in a key or string, too deep), or None."""
    pending: list[tuple[Any, int]] = [(config, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > CONFIG_MAX_DEPTH:
            return f"At most {CONFIG_MAX_DEPTH} levels of nesting."
        if isinstance(value, str):
            problem = clean_text(value)
        elif isinstance(value, dict):
            problem = next((clean_text(key) for key in value if clean_text(key)), None)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            problem = None
            pending.extend((item, depth + 1) for item in value)
        else:
            problem = None
        if problem:
            return problem
    return None


def _protected_labels_errors(labels: Any) -> list[str]:
    if not isinstance(labels, list) or any(label_errors(label) for label in labels):
        return [f"A list of label names ({LABEL_HELP.rstrip('.')}; not 'latest')."]
    return []


def may_move(actor, prompt: Prompt, label: str) -> bool:
    """Whether ``actor`` may move ``label`` of ``prompt`` (system actors may move any label)."""
    if label not in prompt.protected_labels:
        return True
    if actor is None or isinstance(actor, str):  # the system itself: jobs, promotions by rule
        return True
    return bool(actor.has_perm(MOVE_PROTECTED_PERMISSION))


def _may_change_protection(actor) -> bool:
    """Whether ``actor`` may choose which labels are protected (system actors may)."""
    return actor is None or isinstance(actor, str) or bool(actor.has_perm(MOVE_PROTECTED_PERMISSION))


@transaction.atomic
def prompt_create(
    *, actor, key: str, description: str = "", protected_labels: list[str] | None = None, request=None
) -> Prompt:
    """Register the prompt type ``key``; 409 when it exists."""
    errors: dict[str, list[str]] = {}
    if key_errors(key):
        errors["key"] = key_errors(key)
    if protected_labels is not None and _protected_labels_errors(protected_labels):
        errors["protected_labels"] = _protected_labels_errors(protected_labels)
    if _description_errors(description):
        errors["description"] = _description_errors(description)
    if errors:
        raise ValidationFailed("The prompt is not valid.", details=errors)
    if (
        protected_labels is not None
        and not set(DEFAULT_PROTECTED_LABELS) <= set(protected_labels)
        and not _may_change_protection(actor)
    ):
        # Otherwise an operator could create a prompt with nothing protected, then move production.
        # Protecting more than the default is anyone's choice; protecting less needs the permission.
        raise PermissionDenied(
            f"Leaving {', '.join(DEFAULT_PROTECTED_LABELS)} unprotected needs the permission "
            f"{MOVE_PROTECTED_PERMISSION}."
        )
    if Prompt.objects.filter(key=key).exists():
        raise Conflict(f"A prompt with key '{key}' already exists.", code="duplicate_key")
    prompt = Prompt.objects.create(
        key=key,
        description=description or "",
        protected_labels=default_protected_labels()
        if protected_labels is None
        else list(dict.fromkeys(protected_labels)),
        created_by=_user(actor),
    )
    audit_log(
        actor=actor,
        action="prompt.created",
        resource_type=RESOURCE_TYPE,
        resource_id=prompt.key,
        details={"protected_labels": prompt.protected_labels},
        request=request,
    )
    return prompt


@transaction.atomic
def prompt_update(
    *, actor, prompt: Prompt, description: str | None = None, protected_labels: list[str] | None = None, request=None
) -> Prompt:
    """Change a prompt's description or protected labels (changing protection needs the permission)."""
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    if _description_errors(description):
        raise ValidationFailed("The prompt is not valid.", details={"description": _description_errors(description)})
    changed: dict[str, Any] = {}
    if protected_labels is not None:
        if _protected_labels_errors(protected_labels):
            raise ValidationFailed(
                "The prompt is not valid.", details={"protected_labels": _protected_labels_errors(protected_labels)}
            )
        protected_labels = list(dict.fromkeys(protected_labels))
        if protected_labels != prompt.protected_labels:
            if not _may_change_protection(actor):
                raise PermissionDenied("Changing which labels are protected needs the permission to move them.")
            changed["protected_labels"] = {"from": prompt.protected_labels, "to": protected_labels}
            prompt.protected_labels = protected_labels
    if description is not None and description != prompt.description:
        changed["description"] = True
        prompt.description = description
    if changed:
        prompt.save()
        audit_log(
            actor=actor,
            action="prompt.updated",
            resource_type=RESOURCE_TYPE,
            resource_id=prompt.key,
            details=changed,
            request=request,
        )
        registry_changed()
    return prompt


def _version_errors(content: Any, config: Any, message: Any) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(content, str) or not content.strip():
        errors["content"] = ["The prompt text is required."]
    elif _text_errors(content, maximum=CONTENT_MAX_CHARS):
        errors["content"] = _text_errors(content, maximum=CONTENT_MAX_CHARS)
    if not isinstance(config, dict):
        errors["config"] = ["A JSON object (model, temperature, max_tokens, tools …)."]
    elif _config_problem(config):
        errors["config"] = [_config_problem(config)]
    else:
        try:
            size = len(json.dumps(config, ensure_ascii=False, allow_nan=False).encode())
        except (TypeError, ValueError):
            errors["config"] = ["Only JSON values (no NaN or Infinity)."]
        else:
            if size > CONFIG_MAX_BYTES:
                errors["config"] = [f"At most {CONFIG_MAX_BYTES} bytes of JSON (it has {size})."]
    if _text_errors(message, maximum=MESSAGE_MAX_CHARS):
        errors["message"] = _text_errors(message, maximum=MESSAGE_MAX_CHARS)
    return errors


@transaction.atomic
def prompt_version_create(
    *,
    actor,
    prompt: Prompt,
    content: str,
    config: Mapping[str, Any] | None = None,
    message: str = "",
    labels: Iterable[str] = (),
    reuse_identical: bool = False,
    request=None,
) -> PromptVersion:
    """Add the next version of ``prompt`` and move ``labels`` to it, in one transaction.

    With ``reuse_identical`` an existing version with the same content and config is returned
    instead of a new one (inline experiment content: identical text is one version).
    """
    config = dict(config) if isinstance(config, Mapping) else config if config is not None else {}
    errors = _version_errors(content, config, message)
    labels = list(dict.fromkeys(labels))
    label_problems = {label: label_errors(label) for label in labels if label_errors(label)}
    if label_problems:
        errors["labels"] = [f"'{label}': {problems[0]}" for label, problems in label_problems.items()]
    if errors:
        raise ValidationFailed("The prompt version is not valid.", details=errors)
    refused = [label for label in labels if not may_move(actor, prompt, label)]
    if refused:
        raise PermissionDenied(
            f"Moving the protected label(s) {', '.join(refused)} needs the permission {MOVE_PROTECTED_PERMISSION}."
        )
    # The row lock serialises creators of this prompt: max + 1 is then free (no gaps, no duplicates).
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    digest = content_hash(content, config)
    if reuse_identical:
        existing = PromptVersion.objects.filter(prompt=prompt, content_hash=digest).order_by("version").first()
        if existing is not None:
            return existing
    number = (PromptVersion.objects.filter(prompt=prompt).aggregate(top=Max("version"))["top"] or 0) + 1
    version = PromptVersion.objects.create(
        prompt=prompt,
        version=number,
        content=content,
        config=config,
        message=message,
        content_hash=digest,
        created_by=_user(actor),
    )
    Prompt.objects.filter(pk=prompt.pk).update(updated_at=version.created_at)
    audit_log(
        actor=actor,
        action="prompt.version_created",
        resource_type=RESOURCE_TYPE,
        resource_id=prompt.key,
        details={"version": number, "content_hash": digest, "labels": labels, "message": message[:200]},
        request=request,
    )
    for label in labels:
        _move(actor=actor, prompt=prompt, label=label, version=version, reason=message, request=request)
    registry_changed()
    return version


def _move(*, actor, prompt: Prompt, label: str, version: PromptVersion, reason: str, request) -> PromptLabelMove | None:
    """Point ``label`` at ``version`` (the prompt row is locked by the caller); None when it already does."""
    current = (
        PromptLabel.objects.select_for_update().filter(prompt=prompt, name=label).select_related("version").first()
    )
    if current is not None and current.version_id == version.pk:
        return None
    from_version = current.version.version if current is not None else None
    if current is None:
        PromptLabel.objects.create(prompt=prompt, name=label, version=version, updated_by=_user(actor))
    else:
        current.version = version
        current.updated_by = _user(actor)
        current.save(update_fields=["version", "updated_by", "updated_at"])
    move = PromptLabelMove.objects.create(
        prompt=prompt,
        label=label,
        from_version=from_version,
        to_version=version.version,
        actor=_user(actor),
        actor_label=actor_label_for(actor)[:150],
        reason=reason[:REASON_MAX_CHARS],
    )
    audit_log(
        actor=actor,
        action="prompt.label_moved",
        resource_type=RESOURCE_TYPE,
        resource_id=prompt.key,
        severity="warning" if label in prompt.protected_labels else "info",
        details={"label": label, "from_version": from_version, "to_version": version.version, "reason": reason[:200]},
        request=request,
    )
    return move


@transaction.atomic
def prompt_label_move(
    *, actor, prompt: Prompt, label: str, version: int, reason: str = "", request=None
) -> PromptLabelMove | None:
    """Point ``label`` of ``prompt`` at version number ``version``; None when it already points there.

    Rollback is the same call with the earlier number. Protected labels need
    ``prompts.move_protected_label`` (``PermissionDenied`` otherwise); ``latest`` cannot be moved.
    """
    errors: dict[str, list[str]] = {}
    if label_errors(label):
        errors["label"] = label_errors(label)
    if _text_errors(reason, maximum=REASON_MAX_CHARS):
        errors["reason"] = _text_errors(reason, maximum=REASON_MAX_CHARS)
    if errors:
        raise ValidationFailed("The label move is not valid.", details=errors)
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    if not may_move(actor, prompt, label):
        raise PermissionDenied(
            f"'{label}' is a protected label of '{prompt.key}': moving it needs the permission "
            f"{MOVE_PROTECTED_PERMISSION}."
        )
    try:
        target = PromptVersion.objects.get(prompt=prompt, version=version)
    except PromptVersion.DoesNotExist:
        raise NotFound(f"Prompt '{prompt.key}' has no version {version}.") from None
    move = _move(actor=actor, prompt=prompt, label=label, version=target, reason=reason, request=request)
    if move is not None:
        registry_changed()
    return move
