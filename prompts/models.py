"""The prompt registry: prompts, their immutable numbered versions, and the labels that point at them.

A ``Prompt`` is keyed by the prompt type agents already send (``support``, ``triage.v2``). Each
``PromptVersion`` is written once — the ORM refuses updates and deletes, and on PostgreSQL a
trigger refuses them too — and numbered 1, 2, 3 … per prompt by the server. A ``PromptLabel``
(``production``, ``staging``, any slug) names the version that is live under it; every move is a
``PromptLabelMove`` row and an audit event. ``latest`` is not stored: it is the highest version.
"""

from __future__ import annotations

import hashlib
import json
import re

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from agentplatform.errors import Conflict

# The prompt types agents send (and experiments target): the registry's keys are the same strings.
PROMPT_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
PROMPT_KEY_HELP = "1-100 letters, digits, '_', '.', ':' or '-'."
# Keys that would collide with the API's own routes under prompts/.
RESERVED_PROMPT_KEYS = frozenset({"resolve"})
LABEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
LABEL_HELP = "1-50 lowercase letters, digits, '_' or '-', starting with a letter or digit."
# The implicit label: the highest version. Readable like any label, never stored or moved.
LATEST = "latest"
PRODUCTION = "production"
DEFAULT_PROTECTED_LABELS = [PRODUCTION]
CONFIG_MAX_BYTES = 16 * 1024
CONTENT_MAX_CHARS = 100_000
MESSAGE_MAX_CHARS = 500


def default_protected_labels() -> list[str]:
    return list(DEFAULT_PROTECTED_LABELS)


def content_hash(content: str, config: dict) -> str:
    """SHA-256 of the content and the canonical JSON of the config: equal hashes, equal versions."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{content}\x00{canonical}".encode()).hexdigest()


class ImmutableVersion(Conflict):
    code = "prompt_version_immutable"
    default_message = "Prompt versions are immutable: create a new version instead of changing or deleting one."


class ImmutableQuerySet(models.QuerySet):
    """Refuses every bulk change of versions: the only write is an insert."""

    def update(self, **kwargs):
        raise ImmutableVersion()

    def delete(self):
        raise ImmutableVersion()

    def bulk_update(self, objs, fields, batch_size=None):
        raise ImmutableVersion()

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs):
        raise ImmutableVersion()

    def _raw_delete(self, using):
        raise ImmutableVersion()


class Prompt(models.Model):
    """A prompt type's entry in the registry; ``key`` is what agents send as ``prompt_type``."""

    key = models.CharField(
        max_length=100,
        unique=True,
        validators=[RegexValidator(PROMPT_KEY_PATTERN, PROMPT_KEY_HELP)],
        help_text=PROMPT_KEY_HELP,
    )
    description = models.TextField(blank=True, default="")
    # Labels only holders of prompts.move_protected_label may move (admins by default).
    protected_labels = models.JSONField(default=default_protected_labels, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["key"]
        permissions = [("move_protected_label", "Can move a prompt's protected labels (production by default)")]

    def __str__(self) -> str:
        return self.key


class PromptVersion(models.Model):
    """One immutable text of a prompt, numbered per prompt by the server."""

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    content = models.TextField()
    # Free-form model settings (model, temperature, max_tokens, tools …), size-capped by the services.
    config = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=MESSAGE_MAX_CHARS, blank=True, default="")
    content_hash = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["prompt_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "version"], name="prompt_version_unique_number"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="prompt_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.key} v{self.version}"

    def save(self, *args, force_update=False, update_fields=None, **kwargs):
        if not self._state.adding or force_update or update_fields is not None:
            raise ImmutableVersion()
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableVersion()


class PromptLabel(models.Model):
    """``name`` points at one version of the prompt (``production``, ``staging``, …)."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=50, validators=[RegexValidator(LABEL_PATTERN, LABEL_HELP)])
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="labels")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["prompt_id", "name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="prompt_label_unique_name")]

    def __str__(self) -> str:
        return f"{self.prompt_id}:{self.name}"


class PromptLabelMove(models.Model):
    """One move of a label: from which version (none for a new label) to which, who, when and why."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="label_moves")
    label = models.CharField(max_length=50)
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept whatever happens to the user (an agent key, a job: "system:<job>").
    actor_label = models.CharField("by", max_length=150, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")
    moved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-moved_at", "-id"]
        indexes = [models.Index(fields=["prompt", "label", "-moved_at"], name="prompt_label_move_history")]

    def __str__(self) -> str:
        return f"{self.prompt_id}:{self.label} {self.from_version}->{self.to_version}"
