"""Experiments between prompt versions: variants name versions, inline content becomes one, the
control defaults to production at start, the GrowthBook payload carries the version numbers."""

from __future__ import annotations

import pytest

from agentplatform.errors import Conflict
from audit.models import AuditEvent
from experiments.services import lifecycle
from experiments.snapshot import get_snapshot
from prompts import services as prompt_services
from prompts.models import Prompt, PromptVersion

from .conftest import experiment_body

pytestmark = pytest.mark.django_db

LIST = "/api/v1/experiments/"


@pytest.fixture
def support(admin_user, django_capture_on_commit_callbacks):
    """Prompt ``support``: version 1 under production, version 2 a challenger."""
    with django_capture_on_commit_callbacks(execute=True):
        prompt = prompt_services.prompt_create(actor=admin_user, key="support")
        prompt_services.prompt_version_create(
            actor=admin_user, prompt=prompt, content="Prod text", labels=["production"]
        )
        prompt_services.prompt_version_create(
            actor=admin_user, prompt=prompt, content="Challenger text", config={"t": 1}
        )
    return prompt


def test_inline_content_creates_versions_with_an_experiment_message(
    operator_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # audit events are written after commit
        response = operator_client.post(LIST, experiment_body(), format="json")
    assert response.status_code == 201, response.json()
    prompt = Prompt.objects.get(key="support")  # registered on the fly
    versions = {v.version: (v.content, v.message) for v in PromptVersion.objects.filter(prompt=prompt)}
    assert versions == {
        1: ("You are helpful.", "experiment greeting-tone, variant control"),
        2: ("You are warm and helpful.", "experiment greeting-tone, variant warm"),
    }
    assert AuditEvent.objects.filter(action="prompt.version_created", resource_id="support").count() == 2


def test_identical_inline_content_reuses_one_version(operator_client):
    operator_client.post(LIST, experiment_body(), format="json")
    second = experiment_body(key="again")
    response = operator_client.post(LIST, second, format="json")
    assert [v["prompt_version"] for v in response.json()["variants"]] == [1, 2]
    assert PromptVersion.objects.filter(prompt__key="support").count() == 2


def test_variants_may_name_versions_by_number(operator_client, support):
    body = experiment_body(
        variants=[
            {"key": "control", "prompt_version": 1, "is_control": True},
            {"key": "challenger", "prompt_version": 2},
        ]
    )
    response = operator_client.post(LIST, body, format="json")
    assert response.status_code == 201, response.json()
    variants = response.json()["variants"]
    assert [(v["prompt_version"], v["content"]) for v in variants] == [(1, "Prod text"), (2, "Challenger text")]
    assert PromptVersion.objects.filter(prompt=support).count() == 2  # nothing new


def test_an_unknown_version_number_is_a_400_naming_the_variant(operator_client, support):
    body = experiment_body(
        variants=[{"key": "control", "prompt_version": 1, "is_control": True}, {"key": "b", "prompt_version": 9}]
    )
    response = operator_client.post(LIST, body, format="json")
    assert response.status_code == 400
    assert "variants[1].prompt_version" in response.json()["error"]["details"]


def test_a_version_and_different_content_are_refused(operator_client, support):
    body = experiment_body(
        variants=[
            {"key": "control", "prompt_version": 1, "is_control": True},
            {"key": "b", "prompt_version": 2, "content": "Something else"},
        ]
    )
    response = operator_client.post(LIST, body, format="json")
    assert response.status_code == 400
    assert "variants[1].content" in response.json()["error"]["details"]


def test_only_the_control_may_name_neither_content_nor_version(operator_client, support):
    refused = experiment_body(variants=[{"key": "control", "is_control": True}, {"key": "b"}])
    response = operator_client.post(LIST, refused, format="json")
    assert response.status_code == 400 and "variants[1].content" in response.json()["error"]["details"]
    accepted = experiment_body(variants=[{"key": "control", "is_control": True}, {"key": "b", "prompt_version": 2}])
    response = operator_client.post(LIST, accepted, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["variants"][0]["prompt_version"] is None


def test_the_control_gets_the_production_version_when_the_experiment_starts(operator_client, support):
    body = experiment_body(variants=[{"key": "control", "is_control": True}, {"key": "b", "prompt_version": 2}])
    operator_client.post(LIST, body, format="json")
    response = operator_client.post(f"{LIST}greeting-tone/start")
    assert response.status_code == 200, response.json()
    control = response.json()["variants"][0]
    assert (control["prompt_version"], control["content"]) == (1, "Prod text")


def test_a_start_without_production_for_the_control_is_a_409(operator, make_experiment):
    experiment = make_experiment(
        variants=[{"key": "control", "is_control": True}, {"key": "b", "content": "B"}], target_prompt_type="fresh"
    )
    with pytest.raises(Conflict) as refused:
        lifecycle.experiment_start(actor=operator, experiment=experiment)
    assert refused.value.code == "no_production_version"


def test_a_started_experiment_refuses_another_version(operator_client, support, make_experiment):
    make_experiment(start=True)
    response = operator_client.patch(
        f"{LIST}greeting-tone/",
        {
            "variants": [
                {"key": "control", "prompt_version": 2, "is_control": True},
                {"key": "warm", "prompt_version": 4},
            ]
        },
        format="json",
    )
    assert response.status_code == 400 and "variants" in response.json()["error"]["details"]


def test_a_started_experiment_accepts_its_own_variants_back(operator_client, make_experiment):
    make_experiment(start=True)
    current = operator_client.get(f"{LIST}greeting-tone/").json()["variants"]
    current[0]["name"] = "Renamed"
    response = operator_client.patch(f"{LIST}greeting-tone/", {"variants": current}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["variants"][0]["name"] == "Renamed"


def test_the_snapshot_and_growthbook_payload_carry_the_version_numbers(support, make_experiment):
    make_experiment(
        start=True,
        variants=[{"key": "control", "is_control": True}, {"key": "b", "prompt_version": 2}],
    )
    compiled = get_snapshot().by_key["greeting-tone"]
    assert [(v.key, v.version, v.prompt["config"]) for v in compiled.variants] == [
        ("control", 1, {}),
        ("b", 2, {"t": 1}),
    ]
    feature = get_snapshot().features_payload["features"]["support"]
    assert feature["defaultValue"] == "Prod text"  # what resolve serves outside the experiment
    rule = feature["rules"][0]
    assert rule["variations"] == ["Prod text", "Challenger text"]
    assert [m["version"] for m in rule["meta"]] == [1, 2]


def test_copying_an_experiment_keeps_its_versions(operator, make_experiment):
    experiment = make_experiment()
    copy = lifecycle.experiment_copy(actor=operator, experiment=experiment)
    assert list(copy.variants.values_list("prompt_version__version", "content")) == list(
        experiment.variants.values_list("prompt_version__version", "content")
    )
