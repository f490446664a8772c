"""Migration experiments 0005 on a database holding experiments with inline content: every text becomes a
version of its prompt type (identical text, one version) and every user keeps getting the same text."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from experiments.assignment import CompiledExperiment, CompiledVariant
from experiments.services.resolve import prompt_resolve
from experiments.snapshot import snapshot_reset
from prompts.models import content_hash

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("experiments", "0003_result_covering_index"), ("prompts", "0002_version_guard")]
AFTER = [("experiments", "0005_variant_content_to_versions")]
USERS = [f"creator-{i}" for i in range(400)]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _texts_before(Experiment) -> dict[str, str | None]:
    """What each user got for prompt type ``support`` before the migration (the old resolve: inline content)."""
    compiled = []
    for experiment in Experiment.objects.filter(status="running", target_prompt_type="support").order_by(
        "namespace_start"
    ):
        variants = sorted(experiment.variants.all(), key=lambda v: (v.position, v.id))
        compiled.append(
            CompiledExperiment.build(
                id=experiment.id,
                key=experiment.key,
                seed=experiment.seed or experiment.key,
                prompt_type="support",
                namespace_start=float(experiment.namespace_start),
                namespace_end=float(experiment.namespace_end),
                weights=[v.weight for v in variants],
                variants=[CompiledVariant(id=v.id, key=v.key, content=v.content) for v in variants],
            )
        )
    answers = {}
    for user in USERS:
        chosen = next((c.assign(user) for c in compiled if c.in_slice(user)), None)
        answers[user] = chosen.content if chosen else None
    return answers


def _seed(apps) -> None:
    Experiment, Variant = apps.get_model("experiments", "Experiment"), apps.get_model("experiments", "Variant")
    rows = [
        ("tone", "support", "running", "0", "0.4", [("control", "You are helpful."), ("warm", "You are warm.")]),
        ("length", "support", "running", "0.4", "0.7", [("control", "You are helpful."), ("short", "Be brief.")]),
        ("draft-one", "triage", "draft", None, None, [("control", "Triage."), ("b", "Triage, carefully.")]),
    ]
    for key, prompt_type, status, start, end, variants in rows:
        experiment = Experiment.objects.create(
            key=key,
            name=key,
            target_prompt_type=prompt_type,
            primary_metric="success_rate",
            user_percentage=Decimal("30"),
            seed=key,
            status=status,
            namespace_start=Decimal(start) if start else None,
            namespace_end=Decimal(end) if end else None,
        )
        for position, (variant_key, content) in enumerate(variants):
            Variant.objects.create(
                experiment=experiment,
                key=variant_key,
                content=content,
                is_control=position == 0,
                position=position,
                weight=1.0 + position,
            )


def test_inline_contents_become_versions_and_users_keep_their_text():
    old_apps = _migrate(BEFORE)
    _seed(old_apps)
    before = _texts_before(old_apps.get_model("experiments", "Experiment"))
    assert len({text for text in before.values()}) == 4  # the corpus reaches every text and the outside

    new_apps = _migrate(AFTER)
    Variant, PromptVersion = (
        new_apps.get_model("experiments", "Variant"),
        new_apps.get_model("prompts", "PromptVersion"),
    )
    assert not Variant.objects.filter(prompt_version__isnull=True).exists()
    for variant in Variant.objects.select_related("prompt_version__prompt", "experiment"):
        assert variant.prompt_version.content == variant.content
        assert variant.prompt_version.prompt.key == variant.experiment.target_prompt_type
    support = PromptVersion.objects.filter(prompt__key="support").order_by("version")
    # "You are helpful." is in both experiments: one version.
    assert [(v.version, v.content, v.message) for v in support] == [
        (1, "You are helpful.", "experiment tone, variant control"),
        (2, "You are warm.", "experiment tone, variant warm"),
        (3, "Be brief.", "experiment length, variant short"),
    ]
    assert PromptVersion.objects.filter(prompt__key="triage").count() == 2
    # The migration's frozen copy of the hash equals the model's: reuse of identical text keeps working.
    assert all(v.content_hash == content_hash(v.content, v.config) for v in PromptVersion.objects.all())

    assert PromptVersion.objects.count() == 5

    snapshot_reset()
    after = {user: prompt_resolve(user_id=user, prompt_type="support").content for user in USERS}
    assert after == before
    snapshot_reset()
