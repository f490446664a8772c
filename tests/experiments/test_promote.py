"""POST /api/v1/experiments/{key}/promote and experiment_promote: production to the variant's version,
the experiment stopped, in one audited transaction; 409 in the wrong state, 403 without the permission."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from experiments.models import ExperimentStatus
from experiments.services import lifecycle
from experiments.services.resolve import prompt_resolve
from prompts.models import PromptLabel, PromptLabelMove

from .conftest import client_for

pytestmark = pytest.mark.django_db


def promote_url(key: str = "greeting-tone") -> str:
    return f"/api/v1/experiments/{key}/promote"


@pytest.fixture
def running(make_experiment, admin_user, django_capture_on_commit_callbacks):
    """A running experiment on ``support`` (versions 1 control, 2 warm), production on version 1."""
    from prompts import services as prompt_services

    experiment = make_experiment(start=True, user_percentage=100)
    prompt = experiment.variants.get(key="control").prompt_version.prompt
    with django_capture_on_commit_callbacks(execute=True):
        prompt_services.prompt_label_move(actor=admin_user, prompt=prompt, label="production", version=1)
    return experiment


def test_an_admin_promotes_the_winner(running, admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(admin_user).post(promote_url(), {"variant": "warm"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["variant"], body["prompt"], body["label"], body["from_version"], body["version"]) == (
        "warm",
        "support",
        "production",
        1,
        2,
    )
    assert body["experiment"]["status"] == "completed"
    running.refresh_from_db()
    assert running.status == ExperimentStatus.COMPLETED
    assert PromptLabel.objects.get(prompt__key="support", name="production").version.version == 2
    move = PromptLabelMove.objects.filter(label="production").order_by("-id").first()
    assert (move.from_version, move.to_version, move.actor) == (1, 2, admin_user)
    assert "greeting-tone" in move.reason
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"experiment.promoted", "prompt.label_moved", "experiment.stopped"} <= actions
    promoted = AuditEvent.objects.get(action="experiment.promoted")
    assert promoted.details["to_version"] == 2 and promoted.details["variant"] == "warm"
    # Every user now gets the promoted version from the label.
    resolution = prompt_resolve(user_id="anyone", prompt_type="support")
    assert (resolution.source, resolution.prompt["version"]) == ("label", 2)


def test_a_paused_experiment_may_be_promoted(running, admin_user, operator):
    lifecycle.experiment_pause(actor=operator, experiment=running)
    response = client_for(admin_user).post(promote_url(), {"variant": "warm"}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize("state", ["draft", "completed"])
def test_promotion_outside_running_or_paused_is_a_409_with_the_reason(make_experiment, admin_user, operator, state):
    experiment = make_experiment()
    if state == "completed":
        lifecycle.experiment_start(actor=operator, experiment=experiment)
        lifecycle.experiment_stop(actor=operator, experiment=experiment)
    response = client_for(admin_user).post(promote_url(), {"variant": "warm"}, format="json")
    assert response.status_code == 409
    assert state in response.json()["error"]["message"]
    assert not PromptLabel.objects.filter(name="production").exists()


def test_an_operator_may_not_move_production_and_nothing_changes(running, operator):
    response = client_for(operator).post(promote_url(), {"variant": "warm"}, format="json")
    assert response.status_code == 403
    assert "prompts.move_protected_label" in response.json()["error"]["message"]
    running.refresh_from_db()
    assert running.status == ExperimentStatus.RUNNING
    assert PromptLabel.objects.get(prompt__key="support", name="production").version.version == 1


def test_an_operator_may_promote_when_production_is_not_protected(running, operator):
    from prompts.models import Prompt

    Prompt.objects.filter(key="support").update(protected_labels=[])
    response = client_for(operator).post(promote_url(), {"variant": "warm"}, format="json")
    assert response.status_code == 200


def test_agents_and_analysts_may_not_promote(running, agent, analyst):
    for user in (agent, analyst):
        assert client_for(user).post(promote_url(), {"variant": "warm"}, format="json").status_code == 403


def test_an_unknown_variant_is_a_400(running, admin_user):
    response = client_for(admin_user).post(promote_url(), {"variant": "nope"}, format="json")
    assert response.status_code == 400 and "variant" in response.json()["error"]["details"]
    response = client_for(admin_user).post(promote_url(), {}, format="json")
    assert response.status_code == 400


def test_an_unknown_field_is_a_400_and_nothing_is_promoted(running, admin_user):
    response = client_for(admin_user).post(promote_url(), {"variant": "warm", "force": True}, format="json")
    assert response.status_code == 400 and "force" in response.json()["error"]["details"]
    running.refresh_from_db()
    assert running.status == "running"
