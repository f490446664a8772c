"""Life cycle, namespace slices and validation through the services."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentplatform.errors import Conflict, ValidationFailed
from experiments.models import Experiment, ExperimentStatus
from experiments.services import lifecycle

from .conftest import experiment_body

pytestmark = pytest.mark.django_db


def test_create_stores_a_draft_with_variants_in_order(make_experiment):
    experiment = make_experiment()
    assert experiment.status == ExperimentStatus.DRAFT
    assert experiment.seed == "greeting-tone"
    assert [v.key for v in experiment.variants.order_by("position")] == ["control", "warm"]


def test_every_state_change_is_audited_with_its_actor(operator, audit_calls):
    experiment = lifecycle.experiment_create(actor=operator, data=experiment_body())
    experiment = lifecycle.experiment_start(actor=operator, experiment=experiment)
    experiment = lifecycle.experiment_pause(actor=operator, experiment=experiment)
    experiment = lifecycle.experiment_start(actor=operator, experiment=experiment)
    lifecycle.experiment_update(actor=operator, experiment=experiment, data={"name": "New name"})
    lifecycle.experiment_copy(actor=operator, experiment=experiment)
    lifecycle.experiment_stop(actor=operator, experiment=experiment)
    assert [call["action"] for call in audit_calls] == [
        "experiment.created",
        "experiment.started",
        "experiment.paused",
        "experiment.resumed",
        "experiment.updated",
        "experiment.created",
        "experiment.copied",
        "experiment.stopped",
    ]
    assert all(call["actor"] == operator for call in audit_calls)


def test_start_allocates_the_lowest_free_slice(make_experiment, django_capture_on_commit_callbacks):
    first = make_experiment(start=True, key="first", user_percentage=30)
    second = make_experiment(start=True, key="second", user_percentage=25)
    assert (first.namespace_start, first.namespace_end) == (Decimal("0"), Decimal("0.3"))
    assert (second.namespace_start, second.namespace_end) == (Decimal("0.3"), Decimal("0.55"))
    assert first.started_at is not None


def test_start_refuses_when_the_namespace_is_full_and_names_the_free_space(make_experiment):
    make_experiment(start=True, key="big", user_percentage=80)
    third = make_experiment(key="too-big", user_percentage=30)
    with pytest.raises(Conflict) as raised:
        lifecycle.experiment_start(actor=None, experiment=third)
    assert raised.value.code == "namespace_full"
    assert "[0.8, 1)" in raised.value.message
    assert raised.value.details["free"] == [[0.8, 1.0]]


def test_stopped_experiment_frees_its_slice(make_experiment, operator):
    big = make_experiment(start=True, key="big", user_percentage=80)
    lifecycle.experiment_stop(actor=operator, experiment=big)
    again = make_experiment(start=True, key="next", user_percentage=80)
    assert again.namespace_start == Decimal("0")


def test_paused_experiment_keeps_its_slice(make_experiment, operator):
    first = make_experiment(start=True, key="first", user_percentage=60)
    lifecycle.experiment_pause(actor=operator, experiment=first)
    other = make_experiment(key="other", user_percentage=50)
    with pytest.raises(Conflict):
        lifecycle.experiment_start(actor=operator, experiment=other)


def test_other_prompt_types_have_their_own_namespace(make_experiment):
    make_experiment(start=True, key="a", user_percentage=100)
    other = make_experiment(start=True, key="b", user_percentage=100, target_prompt_type="sales")
    assert other.namespace_start == Decimal("0")


def test_life_cycle_running_paused_resumed_completed(make_experiment, operator):
    experiment = make_experiment(start=True)
    experiment = lifecycle.experiment_pause(actor=operator, experiment=experiment)
    assert experiment.status == ExperimentStatus.PAUSED
    experiment = lifecycle.experiment_start(actor=operator, experiment=experiment)
    assert experiment.status == ExperimentStatus.RUNNING
    experiment = lifecycle.experiment_stop(actor=operator, experiment=experiment)
    assert experiment.status == ExperimentStatus.COMPLETED
    assert experiment.stopped_at is not None


@pytest.mark.parametrize("action", ["experiment_start", "experiment_pause", "experiment_stop"])
def test_completed_experiment_cannot_change_state(make_experiment, operator, action):
    experiment = make_experiment(start=True)
    experiment = lifecycle.experiment_stop(actor=operator, experiment=experiment)
    with pytest.raises(Conflict):
        getattr(lifecycle, action)(actor=operator, experiment=experiment)


def test_draft_cannot_be_paused_or_stopped(make_experiment, operator):
    experiment = make_experiment()
    with pytest.raises(Conflict):
        lifecycle.experiment_pause(actor=operator, experiment=experiment)
    with pytest.raises(Conflict):
        lifecycle.experiment_stop(actor=operator, experiment=experiment)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"user_percentage": 40}, "user_percentage"),
        ({"seed": "other-seed"}, "seed"),
        ({"target_prompt_type": "sales"}, "target_prompt_type"),
        (
            {
                "variants": [
                    {"key": "control", "content": "You are helpful.", "weight": 3, "is_control": True},
                    {"key": "warm", "content": "You are warm and helpful.", "weight": 1, "is_control": False},
                ]
            },
            "variants",
        ),
    ],
)
def test_running_experiment_refuses_changes_that_reshuffle_users(make_experiment, operator, change, field):
    experiment = make_experiment(start=True)
    with pytest.raises(ValidationFailed) as raised:
        lifecycle.experiment_update(actor=operator, experiment=experiment, data=change)
    assert field in raised.value.details


def test_running_experiment_accepts_a_new_name(make_experiment, operator):
    experiment = make_experiment(start=True)
    experiment = lifecycle.experiment_update(actor=operator, experiment=experiment, data={"name": "Renamed"})
    assert experiment.name == "Renamed"


def test_draft_variants_can_be_replaced(make_experiment, operator):
    experiment = make_experiment()
    variants = experiment_body()["variants"] + [{"key": "terse", "content": "Be brief.", "weight": 2}]
    lifecycle.experiment_update(actor=operator, experiment=experiment, data={"variants": variants})
    assert list(experiment.variants.order_by("position").values_list("key", flat=True)) == ["control", "warm", "terse"]


def test_copy_creates_a_draft_with_a_new_key_and_seed(make_experiment, operator):
    source = make_experiment(start=True)
    copy = lifecycle.experiment_copy(actor=operator, experiment=source)
    assert copy.key == "greeting-tone-v2"
    assert copy.seed == "greeting-tone-v2"
    assert copy.status == ExperimentStatus.DRAFT
    assert copy.variants.count() == 2


def test_only_drafts_can_be_deleted(make_experiment, operator):
    running = make_experiment(start=True)
    with pytest.raises(Conflict):
        lifecycle.experiment_delete(actor=operator, experiment=running)
    draft = make_experiment(key="draft")
    lifecycle.experiment_delete(actor=operator, experiment=draft)
    assert not Experiment.objects.filter(key="draft").exists()


def test_duplicate_key_is_a_conflict(make_experiment):
    make_experiment()
    with pytest.raises(Conflict):
        make_experiment()


def test_update_records_only_the_fields_that_really_changed(make_experiment, operator, audit_calls):
    experiment = make_experiment()
    audit_calls.clear()
    body = experiment_body()
    same_and_new = {"name": body["name"], "hypothesis": "A new hypothesis.", "variants": body["variants"]}
    lifecycle.experiment_update(actor=operator, experiment=experiment, data=same_and_new)
    lifecycle.experiment_update(actor=operator, experiment=experiment, data={"name": body["name"]})
    assert [(call["action"], call["details"]) for call in audit_calls] == [
        ("experiment.updated", {"fields": ["hypothesis"]})
    ]


def test_empty_seed_keeps_the_current_one(make_experiment, operator):
    experiment = make_experiment()
    experiment = lifecycle.experiment_update(actor=operator, experiment=experiment, data={"seed": ""})
    assert experiment.seed == "greeting-tone"
