"""Every existing variant's inline content becomes a version of its prompt type in the registry.

Per prompt type (created when missing), identical text is one version: the first variant holding
a text (by experiment, then position) creates it with the message ``experiment <key>, variant
<variant>``, later ones reuse it. ``Variant.content`` keeps the same text, so a running
experiment assigns every user the same text before and after. Versions are immutable, so the
reverse only unlinks the variants (the versions stay in the registry).
"""

import hashlib
import json

from django.db import migrations
from django.db.models import Max


def _content_hash(content: str, config: dict) -> str:
    # prompts.models.content_hash at the time of writing (a migration does not import app code).
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{content}\x00{canonical}".encode()).hexdigest()


def forwards(apps, schema_editor):
    Variant = apps.get_model("experiments", "Variant")
    Prompt = apps.get_model("prompts", "Prompt")
    PromptVersion = apps.get_model("prompts", "PromptVersion")
    variants = (
        Variant.objects.filter(prompt_version__isnull=True)
        .exclude(content="")
        .select_related("experiment")
        .order_by("experiment_id", "position", "id")
    )
    prompts: dict[str, object] = {}
    for variant in variants.iterator(chunk_size=500):
        key = variant.experiment.target_prompt_type
        prompt = prompts.get(key)
        if prompt is None:
            prompt, _ = Prompt.objects.get_or_create(key=key, defaults={"protected_labels": ["production"]})
            prompts[key] = prompt
        digest = _content_hash(variant.content, {})
        version = PromptVersion.objects.filter(prompt=prompt, content_hash=digest).order_by("version").first()
        if version is None:
            number = (PromptVersion.objects.filter(prompt=prompt).aggregate(top=Max("version"))["top"] or 0) + 1
            version = PromptVersion.objects.create(
                prompt=prompt,
                version=number,
                content=variant.content,
                config={},
                message=f"experiment {variant.experiment.key}, variant {variant.key}"[:500],
                content_hash=digest,
            )
        Variant.objects.filter(pk=variant.pk).update(prompt_version=version)


def backwards(apps, schema_editor):
    apps.get_model("experiments", "Variant").objects.update(prompt_version=None)


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0004_variant_prompt_version"),
        ("prompts", "0002_version_guard"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
