"""The registry's writes: numbering, immutability at the ORM and the database, labels and their history."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction
from django.db.utils import DatabaseError

from agentplatform.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from audit.models import AuditEvent
from prompts import selectors, services
from prompts.models import ImmutableVersion, PromptLabel, PromptLabelMove, PromptVersion


def labels_of(prompt) -> dict[str, int]:
    """``{label: version number}`` as stored."""
    return dict(PromptLabel.objects.filter(prompt=prompt).values_list("name", "version__version"))


@pytest.fixture
def operator(user_factory):
    return user_factory(role="operator")


@pytest.fixture
def admin(user_factory):
    return user_factory(role="admin")


@pytest.fixture
def prompt(operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # audit events are written after commit
        return services.prompt_create(actor=operator, key="support", description="Support agent")


def test_create_audits_and_refuses_duplicates_and_bad_keys(operator, prompt):
    assert prompt.protected_labels == ["production"]
    assert AuditEvent.objects.filter(action="prompt.created", resource_id="support").count() == 1
    with pytest.raises(Conflict):
        services.prompt_create(actor=operator, key="support")
    for bad in ("", "has space", "x" * 101, "resolve", "a/b"):
        with pytest.raises(ValidationFailed) as caught:
            services.prompt_create(actor=operator, key=bad)
        assert "key" in caught.value.details


def test_versions_are_numbered_and_labels_move_with_them(operator, prompt, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.prompt_version_create(actor=operator, prompt=prompt, content="Hi {{name}}", labels=["staging"])
        second = services.prompt_version_create(
            actor=operator, prompt=prompt, content="Hello {{name}}", config={"model": "m", "temperature": 0.2}
        )
    assert (first.version, second.version) == (1, 2)
    assert labels_of(prompt) == {"staging": 1}
    assert selectors.prompt_latest_version(prompt=prompt) == second
    move = PromptLabelMove.objects.get()
    assert (move.label, move.from_version, move.to_version, move.actor) == ("staging", None, 1, operator)
    actions = list(AuditEvent.objects.filter(resource_id="support").values_list("action", flat=True))
    assert actions.count("prompt.version_created") == 2 and actions.count("prompt.label_moved") == 1


def test_identical_content_is_one_version_only_when_asked(operator, prompt):
    one = services.prompt_version_create(actor=operator, prompt=prompt, content="Same", reuse_identical=True)
    again = services.prompt_version_create(actor=operator, prompt=prompt, content="Same", reuse_identical=True)
    other_config = services.prompt_version_create(
        actor=operator, prompt=prompt, content="Same", config={"model": "x"}, reuse_identical=True
    )
    explicit = services.prompt_version_create(actor=operator, prompt=prompt, content="Same")
    assert one == again
    assert (other_config.version, explicit.version) == (2, 3)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "x" * 100_001}, "content"),
        ({"content": "ok", "config": []}, "config"),
        ({"content": "ok", "config": {"blob": "x" * 17_000}}, "config"),
        ({"content": "ok", "config": {"t": float("nan")}}, "config"),
        ({"content": "ok", "message": "m" * 501}, "message"),
        ({"content": "ok", "labels": ["latest"]}, "labels"),
        ({"content": "ok", "labels": ["Bad Label"]}, "labels"),
    ],
)
def test_invalid_versions_are_refused_with_the_field(operator, prompt, fields, field):
    with pytest.raises(ValidationFailed) as caught:
        services.prompt_version_create(actor=operator, prompt=prompt, **fields)
    assert field in caught.value.details
    assert not PromptVersion.objects.exists()


def test_versions_are_immutable_in_the_orm(operator, prompt):
    version = services.prompt_version_create(actor=operator, prompt=prompt, content="v1")
    version.content = "changed"
    with pytest.raises(ImmutableVersion):
        version.save()
    with pytest.raises(ImmutableVersion):
        version.delete()
    with pytest.raises(ImmutableVersion):
        PromptVersion.objects.filter(pk=version.pk).update(content="changed")
    with pytest.raises(ImmutableVersion):
        PromptVersion.objects.filter(pk=version.pk).delete()
    assert PromptVersion.objects.get(pk=version.pk).content == "v1"


def test_versions_are_immutable_in_the_database(operator, prompt):
    version = services.prompt_version_create(actor=operator, prompt=prompt, content="v1")
    for statement in (
        "UPDATE prompts_promptversion SET content = 'changed' WHERE id = %s",
        "DELETE FROM prompts_promptversion WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [version.pk])
    assert PromptVersion.objects.get(pk=version.pk).content == "v1"


def test_protected_labels_need_the_permission(operator, admin, prompt, django_capture_on_commit_callbacks):
    services.prompt_version_create(actor=operator, prompt=prompt, content="v1")
    services.prompt_version_create(actor=operator, prompt=prompt, content="v2")
    with pytest.raises(PermissionDenied):
        services.prompt_label_move(actor=operator, prompt=prompt, label="production", version=1)
    with pytest.raises(PermissionDenied):
        services.prompt_version_create(actor=operator, prompt=prompt, content="v3", labels=["production"])
    assert PromptVersion.objects.filter(prompt=prompt).count() == 2  # the refused version was not kept
    services.prompt_label_move(actor=operator, prompt=prompt, label="staging", version=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.prompt_label_move(actor=admin, prompt=prompt, label="production", version=2, reason="ship")
        services.prompt_label_move(actor=admin, prompt=prompt, label="production", version=1, reason="rollback")
    assert labels_of(prompt) == {"production": 1, "staging": 2}
    history = [
        (m.from_version, m.to_version, m.reason)
        for m in selectors.prompt_label_history(prompt=prompt, label="production")
    ]
    assert history == [(2, 1, "rollback"), (None, 2, "ship")]
    event = AuditEvent.objects.filter(action="prompt.label_moved").order_by("-id").first()
    assert event.details["label"] == "production" and event.details["to_version"] == 1


def test_label_moves_refuse_latest_unknown_versions_and_record_nothing_when_unchanged(operator, prompt):
    services.prompt_version_create(actor=operator, prompt=prompt, content="v1")
    with pytest.raises(ValidationFailed):
        services.prompt_label_move(actor=operator, prompt=prompt, label="latest", version=1)
    with pytest.raises(NotFound):
        services.prompt_label_move(actor=operator, prompt=prompt, label="staging", version=9)
    assert services.prompt_label_move(actor=operator, prompt=prompt, label="staging", version=1) is not None
    assert services.prompt_label_move(actor=operator, prompt=prompt, label="staging", version=1) is None
    assert PromptLabelMove.objects.count() == 1


def test_a_new_prompt_has_no_label_and_no_latest_version(prompt):
    assert labels_of(prompt) == {}
    assert selectors.prompt_latest_version(prompt=prompt) is None


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_creators_get_one_to_twenty(user_factory):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers itself; the row lock is what PostgreSQL needs")
    operator = user_factory(role="operator")
    prompt = services.prompt_create(actor=operator, key="concurrent")
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def create(index: int) -> None:
        try:
            barrier.wait()
            services.prompt_version_create(actor=operator, prompt=prompt, content=f"text {index}")
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    numbers = sorted(PromptVersion.objects.filter(prompt=prompt).values_list("version", flat=True))
    assert numbers == list(range(1, 21))
    assert sorted(PromptVersion.objects.filter(prompt=prompt).values_list("content", flat=True)) == sorted(
        f"text {i}" for i in range(20)
    )
