"""The registry as the hot path reads it: every label of every prompt, compiled once per version.

The resolve hot path and the label endpoint serve the registry from the process's snapshot
(``experiments.snapshot``: one snapshot, one shared version key, so a resolve stays one dictionary
read). A change publishes a new shared version once its transaction commits, and each process
rebuilds when it sees it (at most ``EXPERIMENTS_SNAPSHOT_CHECK_SECONDS`` later).

Each stored label and the implicit ``latest`` of each prompt compile to a ``CompiledLabel``: the
version's number, text, config and placeholders, a strong ETag, and the label endpoint's JSON
body already encoded, so serving it is a lookup and a write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from experiments.snapshot import snapshot_invalidate
from prompts.templating import variables_of


def registry_changed() -> None:
    """Publish a new registry version after the current transaction commits."""
    snapshot_invalidate()


@dataclass(frozen=True, slots=True)
class CompiledLabel:
    key: str
    label: str
    version: int
    content: str
    config: dict[str, Any]
    variables: tuple[str, ...]
    # A strong validator: it names the prompt, the label and the immutable version's content hash.
    etag: str
    # ``{key, version, label, content, config}``, what resolve answers as ``prompt`` (shared: never mutate).
    prompt: dict[str, Any]
    # The label endpoint's body, encoded once.
    body: bytes


def label_etag(*, key: str, label: str, version: int, content_hash: str) -> str:
    digest = hashlib.sha256(f"{key}\x00{label}\x00{version}\x00{content_hash}".encode()).hexdigest()
    return f'"{digest[:32]}"'


def compile_label(*, key: str, label: str, version) -> CompiledLabel:
    """``version`` (a ``PromptVersion``) as served under ``label`` of prompt ``key``."""
    config = dict(version.config or {})
    variables = tuple(variables_of(version.content))
    body = {
        "key": key,
        "label": label,
        "version": version.version,
        "content": version.content,
        "config": config,
        "variables": list(variables),
    }
    return CompiledLabel(
        key=key,
        label=label,
        version=version.version,
        content=version.content,
        config=config,
        variables=variables,
        etag=label_etag(key=key, label=label, version=version.version, content_hash=version.content_hash),
        prompt={"key": key, "version": version.version, "label": label, "content": version.content, "config": config},
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
    )


def compile_registry() -> dict[str, dict[str, CompiledLabel]]:
    """``{prompt key: {label: CompiledLabel}}`` for every stored label and each prompt's ``latest``."""
    from django.db.models import OuterRef, Subquery

    from prompts.models import LATEST, PromptLabel, PromptVersion

    registry: dict[str, dict[str, CompiledLabel]] = {}
    newest = PromptVersion.objects.filter(prompt=OuterRef("prompt")).order_by("-version").values("version")[:1]
    for version in PromptVersion.objects.filter(version=Subquery(newest)).select_related("prompt"):
        key = version.prompt.key
        registry.setdefault(key, {})[LATEST] = compile_label(key=key, label=LATEST, version=version)
    for row in PromptLabel.objects.select_related("prompt", "version"):
        key = row.prompt.key
        registry.setdefault(key, {})[row.name] = compile_label(key=key, label=row.name, version=row.version)
    return registry
