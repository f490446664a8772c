"""The REST contract: CRUD body, transitions, permissions per role."""

from __future__ import annotations

import json

import pytest

from experiments.models import Experiment, ExperimentStatus

from .conftest import client_for, experiment_body

pytestmark = pytest.mark.django_db

LIST = "/api/v1/experiments/"


def detail(key: str) -> str:
    return f"/api/v1/experiments/{key}/"


def test_create_returns_the_detail_shape(operator_client):
    response = operator_client.post(LIST, experiment_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "draft"
    assert body["seed"] == "greeting-tone"
    assert body["namespace"] == {"name": "support", "start": None, "end": None}
    assert body["sequential"] is False and body["target_mde"] == 0.05
    assert body["variants"][0] == {
        "key": "control",
        "name": "Control",
        "prompt_version": 1,  # the inline content became version 1 of the prompt "support"
        "content": "You are helpful.",
        "weight": 1.0,
        "is_control": True,
    }
    assert body["variants"][1]["prompt_version"] == 2
    assert {"started_at", "stopped_at", "user_percentage", "guardrail_metrics", "hypothesis"} <= set(body)


def test_create_with_only_required_fields_uses_defaults(operator_client):
    body = experiment_body()
    for name in ("hypothesis", "guardrail_metrics"):
        body.pop(name)
    response = operator_client.post(LIST, body, format="json")
    assert response.status_code == 201
    assert response.json()["hypothesis"] == "" and response.json()["guardrail_metrics"] == []


def test_invalid_body_answers_400_with_field_messages(operator_client):
    response = operator_client.post(LIST, experiment_body(user_percentage=0, primary_metric="revenue"), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {"user_percentage", "primary_metric"} <= set(error["details"])


def test_unknown_field_is_refused(operator_client):
    response = operator_client.post(LIST, experiment_body(colour="blue"), format="json")
    assert response.status_code == 400
    assert "colour" in response.json()["error"]["details"]


def test_an_unknown_field_in_a_variant_is_refused(operator_client):
    body = experiment_body()
    body["variants"][1]["colour"] = "blue"
    response = operator_client.post(LIST, body, format="json")
    assert response.status_code == 400
    assert "colour" in json.dumps(response.json()["error"]["details"])


def test_reserved_key_is_refused(operator_client):
    response = operator_client.post(LIST, experiment_body(key="growthbook-features"), format="json")
    assert response.status_code == 400
    assert "reserved" in response.json()["error"]["details"]["key"][0]


def test_duplicate_key_answers_409(operator_client):
    operator_client.post(LIST, experiment_body(), format="json")
    response = operator_client.post(LIST, experiment_body(), format="json")
    assert response.status_code == 409


def test_list_filters_by_status(operator_client, make_experiment):
    make_experiment(key="draft-one")
    make_experiment(key="running-one", start=True)
    response = operator_client.get(LIST, {"status": "running"})
    assert [item["key"] for item in response.json()["results"]] == ["running-one"]


def test_the_list_costs_the_same_queries_for_two_experiments_or_six(operator_client, make_experiment):
    """Each variant's prompt version comes with the page (no query per variant)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = operator_client.get(LIST)
        assert all(v["prompt_version"] for item in response.json()["results"] for v in item["variants"])
        return len(captured)

    for index in range(2):
        make_experiment(key=f"small-{index}")
    queries()  # the caller's first request also loads its identity
    two = queries()
    for index in range(4):
        make_experiment(key=f"more-{index}")
    assert queries() == two


def test_start_pause_stop_through_the_api(operator_client, make_experiment, django_capture_on_commit_callbacks):
    make_experiment()
    with django_capture_on_commit_callbacks(execute=True):
        started = operator_client.post(detail("greeting-tone") + "start")
    assert started.status_code == 200
    assert started.json()["status"] == "running"
    assert started.json()["namespace"] == {"name": "support", "start": 0.0, "end": 0.5}
    assert operator_client.post(detail("greeting-tone") + "pause").json()["status"] == "paused"
    assert operator_client.post(detail("greeting-tone") + "start").json()["status"] == "running"
    stopped = operator_client.post(detail("greeting-tone") + "stop")
    assert stopped.json()["status"] == "completed" and stopped.json()["stopped_at"]
    again = operator_client.post(detail("greeting-tone") + "start")
    assert again.status_code == 409


def test_start_without_room_answers_409_naming_free_space(operator_client, make_experiment):
    make_experiment(key="wide", user_percentage=90, start=True)
    make_experiment(key="narrow", user_percentage=20)
    response = operator_client.post(detail("narrow") + "start")
    assert response.status_code == 409
    assert "[0.9, 1)" in response.json()["error"]["message"]


def test_patch_of_running_weights_is_refused(operator_client, make_experiment):
    make_experiment(start=True)
    variants = experiment_body()["variants"]
    variants[1]["weight"] = 5
    response = operator_client.patch(detail("greeting-tone"), {"variants": variants}, format="json")
    assert response.status_code == 400
    assert "variants" in response.json()["error"]["details"]


def test_patch_of_draft_changes_percentage(operator_client, make_experiment):
    make_experiment()
    response = operator_client.patch(detail("greeting-tone"), {"user_percentage": 12.5}, format="json")
    assert response.status_code == 200
    assert response.json()["user_percentage"] == 12.5


def test_delete_draft(operator_client, make_experiment):
    make_experiment()
    assert operator_client.delete(detail("greeting-tone")).status_code == 204
    assert not Experiment.objects.exists()


def test_unknown_experiment_is_404(operator_client):
    assert operator_client.get(detail("nope")).status_code == 404


# --- permissions per the accounts matrix ---------------------------------------------------------


def test_analyst_reads_but_cannot_create_or_start(analyst_client, make_experiment):
    make_experiment()
    assert analyst_client.get(LIST).status_code == 200
    assert analyst_client.get(detail("greeting-tone")).status_code == 200
    assert analyst_client.post(LIST, experiment_body(key="other"), format="json").status_code == 403
    assert analyst_client.post(detail("greeting-tone") + "start").status_code == 403
    assert analyst_client.patch(detail("greeting-tone"), {"name": "x"}, format="json").status_code == 403
    assert (
        analyst_client.post(
            "/api/v1/prompts/resolve", {"user_id": "u", "prompt_type": "support"}, format="json"
        ).status_code
        == 403
    )


def test_agent_resolves_and_writes_results_but_cannot_manage(agent_client, make_experiment):
    make_experiment(start=True)
    assert agent_client.get(LIST).status_code == 403
    assert agent_client.post(LIST, experiment_body(key="other"), format="json").status_code == 403
    assert agent_client.post(detail("greeting-tone") + "stop").status_code == 403
    resolved = agent_client.post("/api/v1/prompts/resolve", {"user_id": "u1", "prompt_type": "support"}, format="json")
    assert resolved.status_code == 200
    assert agent_client.get("/api/v1/experiments/growthbook-features").status_code == 200


def test_operator_manages_experiments(operator_client):
    assert operator_client.post(LIST, experiment_body(), format="json").status_code == 201
    assert operator_client.post(detail("greeting-tone") + "start").status_code == 200


def test_admin_may_do_everything(admin_user, make_experiment):
    client = client_for(admin_user)
    assert client.post(LIST, experiment_body(), format="json").status_code == 201
    assert client.post(detail("greeting-tone") + "start").status_code == 200
    assert (
        client.post("/api/v1/prompts/resolve", {"user_id": "u", "prompt_type": "support"}, format="json").status_code
        == 200
    )


def test_anonymous_is_refused(api_client):
    assert api_client.get(LIST).status_code in (401, 403)
    assert api_client.post("/api/v1/prompts/resolve", {"user_id": "u", "prompt_type": "x"}).status_code in (401, 403)


def test_status_values_are_the_documented_ones():
    assert set(ExperimentStatus.values) == {"draft", "running", "paused", "completed"}


def test_reads_and_writes_use_their_own_rate_limit_groups():
    from rest_framework.test import APIRequestFactory

    from experiments.api import ExperimentDetailView, ExperimentListView

    factory = APIRequestFactory()

    def scope(view_class, request):
        view = view_class()
        view.request = request
        return view.throttle_scope

    assert scope(ExperimentListView, factory.get(LIST)) == "experiments.read"
    assert scope(ExperimentListView, factory.post(LIST)) == "experiments.write"
    assert scope(ExperimentDetailView, factory.patch(detail("k"))) == "experiments.write"


def test_null_optional_fields_take_their_defaults(operator_client):
    body = experiment_body(hypothesis=None, guardrail_metrics=None, sequential=None, target_mde=None)
    response = operator_client.post(LIST, body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (created["hypothesis"], created["guardrail_metrics"], created["sequential"], created["target_mde"]) == (
        "",
        [],
        False,
        0.05,
    )


def test_input_serializer_hands_the_service_typed_values():
    from decimal import Decimal

    from experiments.serializers import ExperimentCreateInputSerializer

    body = experiment_body(user_percentage=12.5)
    body["variants"][1].pop("weight")
    serializer = ExperimentCreateInputSerializer(data=body)
    assert serializer.is_valid(), serializer.errors
    data = serializer.validated_data
    assert data["user_percentage"] == Decimal("12.5") and isinstance(data["user_percentage"], Decimal)
    assert [variant["weight"] for variant in data["variants"]] == [1.0, 1.0]
    assert set(data) == set(body)


def test_partial_update_names_the_rule_across_fields_with_the_stored_primary_metric(operator_client, make_experiment):
    make_experiment()
    response = operator_client.patch(detail("greeting-tone"), {"guardrail_metrics": ["success_rate"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["guardrail_metrics"] == [
        "The primary metric cannot also be a guardrail."
    ]


def test_frozen_field_of_a_running_experiment_answers_400_on_the_field(operator_client, make_experiment):
    make_experiment(start=True)
    response = operator_client.patch(detail("greeting-tone"), {"user_percentage": 20}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (
        error["code"] == "validation_error"
        and "Cannot change once the experiment has started" in (error["details"]["user_percentage"][0])
    )
