"""The admin flow: create -> start -> resolve -> results -> stop -> export, with the shared rules."""

from __future__ import annotations

import pytest
from django.test import Client

from agentplatform.errors import Conflict
from experiments.models import Experiment, ExperimentStatus
from experiments.snapshot import compile_experiment

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db

ADD = "/admin/experiments/experiment/add/"


def admin_form(**overrides) -> dict:
    data = {
        "key": "admin-made",
        "name": "Made in the admin",
        "hypothesis": "",
        "target_prompt_type": "support",
        "primary_metric": "success_rate",
        "guardrail_metrics": ["tokens"],
        "target_mde": "0.05",
        "user_percentage": "40",
        "seed": "",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "2",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-key": "control",
        "variants-0-name": "Control",
        "variants-0-content": 'Be helpful. =HYPERLINK("x")',
        "variants-0-weight": "1",
        "variants-0-is_control": "on",
        "variants-1-key": "short",
        "variants-1-name": "Short",
        "variants-1-content": "Be brief.",
        "variants-1-weight": "3",
    }
    data.update(overrides)
    return data


def _errors(response) -> str:
    """Every error message on the page, unescaped: the form's and the variants formset's."""
    form_errors = [m for messages in response.context["adminform"].form.errors.values() for m in messages]
    formset_errors = list(response.context["inline_admin_formsets"][0].formset.non_form_errors())
    return "\n".join(form_errors + formset_errors)


@pytest.fixture
def staff(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def test_admin_flow_create_start_resolve_results_stop_export(staff, agent, django_capture_on_commit_callbacks):
    response = staff.post(ADD, admin_form())
    assert response.status_code == 302, response.context["errors"] if response.context else response
    experiment = Experiment.objects.get(key="admin-made")
    assert experiment.seed == "admin-made" and experiment.guardrail_metrics == ["tokens"]
    assert list(experiment.variants.order_by("position").values_list("key", flat=True)) == ["control", "short"]

    start_url = f"/admin/experiments/experiment/{experiment.pk}/transition/start/"
    confirmation = staff.get(start_url)
    assert confirmation.status_code == 200 and b"Yes, start" in confirmation.content
    with django_capture_on_commit_callbacks(execute=True):
        assert staff.post(start_url).status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING

    compiled = compile_experiment(experiment)
    user = next(f"c{i}" for i in range(5000) if compiled.in_slice(f"c{i}"))
    agent_api = client_for(agent)
    resolved = agent_api.post("/api/v1/prompts/resolve", {"user_id": user, "prompt_type": "support"}, format="json")
    assert resolved.json()["experiment"] == "admin-made"
    variant = resolved.json()["variant"]
    formula_user = next(f"=cmd|' /C calc'!A{i}" for i in range(5000) if compiled.in_slice(f"=cmd|' /C calc'!A{i}"))
    rows = [
        {"event_id": "evt-1", "user_id": user, "variant": variant, "model": "@SUM(1+1)", "success": True},
        {"event_id": "evt-2", "user_id": formula_user, "variant": compiled.assign(formula_user).key},
    ]
    posted = agent_api.post("/api/v1/experiments/admin-made/results", {"results": rows}, format="json")
    assert posted.json() == {"accepted": 2, "duplicates": 0, "rejected": []}

    stop_url = f"/admin/experiments/experiment/{experiment.pk}/transition/stop/"
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(stop_url)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.COMPLETED

    export = staff.get(f"/admin/experiments/experiment/{experiment.pk}/export/results.csv")
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    text = b"".join(export.streaming_content).decode()
    assert text.splitlines()[0].startswith("event_id,experiment,variant,user_id")
    assert "'@SUM(1+1)" in text and "'=cmd|" in text
    assert "\n=" not in text and ",=" not in text and ",@" not in text
    exposures = b"".join(
        staff.get(f"/admin/experiments/experiment/{experiment.pk}/export/exposures.csv").streaming_content
    )
    assert exposures.decode().startswith("experiment,variant,user_id,first_seen_at")


def test_admin_refuses_what_the_api_refuses_with_the_same_message(staff):
    response = staff.post(ADD, admin_form(user_percentage="0", **{"variants-1-is_control": "on"}))
    assert response.status_code == 200
    errors = _errors(response)
    assert "Must be more than 0 and at most 100" in errors
    assert "Exactly one variant must be the control (2 marked)." in errors
    assert not Experiment.objects.exists()


def test_admin_refuses_duplicate_variant_keys_and_reserved_key(staff):
    response = staff.post(ADD, admin_form(key="growthbook-features", **{"variants-1-key": "control"}))
    errors = _errors(response)
    assert "is reserved" in errors
    assert "Duplicate variant key 'control'." in errors


def test_running_experiment_fields_are_read_only_in_the_admin(staff, make_experiment):
    experiment = make_experiment(start=True)
    page = staff.get(f"/admin/experiments/experiment/{experiment.pk}/change/")
    assert page.status_code == 200
    form_fields = page.context["adminform"].form.fields
    assert "user_percentage" not in form_fields and "seed" not in form_fields
    assert b"Pause" in page.content and b"Stop" in page.content


def test_admin_transition_is_audited_with_the_acting_user(staff, operator, make_experiment, audit_calls):
    experiment = make_experiment(start=True)
    audit_calls.clear()
    staff.post(f"/admin/experiments/experiment/{experiment.pk}/transition/stop/")
    assert [(c["action"], c["actor"]) for c in audit_calls] == [("experiment.stopped", operator)]
    assert audit_calls[0]["request"] is not None


def test_pause_then_resume_from_the_admin(staff, make_experiment):
    experiment = make_experiment(start=True)
    staff.post(f"/admin/experiments/experiment/{experiment.pk}/transition/pause/")
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.PAUSED
    staff.post(f"/admin/experiments/experiment/{experiment.pk}/transition/resume/")
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_refused_start_is_reported_with_the_free_space(staff, make_experiment):
    make_experiment(start=True, key="wide", user_percentage=90)
    narrow = make_experiment(key="narrow", user_percentage=20)
    response = staff.post(f"/admin/experiments/experiment/{narrow.pk}/transition/start/", follow=True)
    assert "[0.9, 1)" in response.content.decode()
    narrow.refresh_from_db()
    assert narrow.status == ExperimentStatus.DRAFT


def test_copy_as_new_from_the_admin(staff, make_experiment):
    experiment = make_experiment(start=True)
    response = staff.post(f"/admin/experiments/experiment/{experiment.pk}/copy/")
    assert response.status_code == 302
    assert Experiment.objects.get(key="greeting-tone-v2").status == ExperimentStatus.DRAFT


def test_list_and_namespace_pages_render(staff, make_experiment):
    make_experiment(start=True, key="shown", user_percentage=35)
    listing = staff.get("/admin/experiments/experiment/")
    assert listing.status_code == 200 and b"shown" in listing.content and b"35%" in listing.content
    slices = staff.get("/admin/experiments/experiment/namespaces/")
    assert slices.status_code == 200 and b"[0, 0.35)" in slices.content and b"<svg" in slices.content


def test_analyst_cannot_start_from_the_admin_but_can_export(analyst, make_experiment):
    experiment = make_experiment(start=True)
    analyst.is_staff = True
    analyst.save()
    client = Client()
    client.force_login(analyst)
    assert client.post(f"/admin/experiments/experiment/{experiment.pk}/transition/stop/").status_code == 403
    assert client.get(f"/admin/experiments/experiment/{experiment.pk}/export/results.csv").status_code == 200


def test_agent_cannot_export(db, make_experiment):
    experiment = make_experiment()
    agent = make_user("agent", "agent-staff")
    agent.is_staff = True
    agent.save()
    client = Client()
    client.force_login(agent)
    assert client.get(f"/admin/experiments/experiment/{experiment.pk}/export/results.csv").status_code in (302, 403)


# --- the admin saves through the services: the same input gives the same rows and audit events ----

SETTINGS = ("name", "hypothesis", "target_prompt_type", "primary_metric", "guardrail_metrics", "user_percentage")
SETTINGS += ("sequential", "target_mde", "status", "created_by_id", "namespace_start", "started_at")


def _as_admin_form(body: dict, stored: list | None = None) -> dict:
    """The admin form's POST data for an API body; ``stored`` variants are kept if the body names them,
    else marked for deletion, and the body's other variants are added after them."""
    wanted = {variant["key"]: variant for variant in body["variants"]}
    rows = []
    for variant in stored or []:
        deleted = {"key": variant.key, "content": variant.content, "weight": variant.weight, "DELETE": True}
        rows.append((variant.pk, wanted.pop(variant.key, None) or deleted))
    rows += [(None, variant) for variant in wanted.values()]
    data = {
        "key": body.get("key", ""),
        "name": body["name"],
        "hypothesis": body.get("hypothesis", ""),
        "target_prompt_type": body["target_prompt_type"],
        "primary_metric": body["primary_metric"],
        "guardrail_metrics": body.get("guardrail_metrics", []),
        "target_mde": str(body.get("target_mde", 0.05)),
        "user_percentage": str(body["user_percentage"]),
        "seed": "",
        "variants-TOTAL_FORMS": str(len(rows)),
        "variants-INITIAL_FORMS": str(len(stored or [])),
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
    }
    for index, (pk, variant) in enumerate(rows):
        prefix = f"variants-{index}-"
        data.update({prefix + "key": variant["key"], prefix + "name": variant.get("name", "")})
        data.update({prefix + "content": variant["content"], prefix + "weight": str(variant["weight"])})
        data.update({prefix + name: "on" for name in ("is_control", "DELETE") if variant.get(name)})
        if pk is not None:
            data[prefix + "id"] = str(pk)
    return data


def _stored(key: str) -> tuple[dict, list]:
    experiment = Experiment.objects.get(key=key)
    row = {field: getattr(experiment, field) for field in SETTINGS}
    row["seed"] = experiment.seed.replace(key, "<key>")
    variants = list(
        experiment.variants.order_by("position").values_list(
            "key", "name", "content", "weight", "is_control", "position"
        )
    )
    return row, variants


def _events(audit_calls: list[dict], key: str) -> list[tuple]:
    return [
        (call["action"], call["actor"], call["resource_type"], call["details"])
        for call in audit_calls
        if call["resource_id"] == key
    ]


BODY = {
    "name": "Made both ways",
    "hypothesis": "Shorter is better.",
    "target_prompt_type": "support",
    "primary_metric": "success_rate",
    "guardrail_metrics": ["tokens"],
    "user_percentage": 40,
    "target_mde": 0.05,
    "variants": [
        {"key": "control", "name": "Control", "content": "Be helpful.", "weight": 1.0, "is_control": True},
        {"key": "short", "name": "Short", "content": "Be brief.", "weight": 3.0, "is_control": False},
    ],
}
CHANGE = {
    **BODY,
    "name": "Changed both ways",
    "user_percentage": 25,
    "variants": [
        {"key": "control", "name": "Control", "content": "Be helpful.", "weight": 2.0, "is_control": True},
        {"key": "terse", "name": "Terse", "content": "Be terse.", "weight": 1.0, "is_control": False},
    ],
}


def test_admin_and_api_create_the_same_rows_and_audit_events(staff, operator, audit_calls):
    api = client_for(operator)
    assert api.post("/api/v1/experiments/", {**BODY, "key": "via-api"}, format="json").status_code == 201
    assert staff.post(ADD, _as_admin_form({**BODY, "key": "via-admin"})).status_code == 302

    assert _stored("via-admin") == _stored("via-api")
    assert _events(audit_calls, "via-admin") == _events(audit_calls, "via-api")
    assert [event[0] for event in _events(audit_calls, "via-api")] == ["experiment.created"]


def test_admin_and_api_change_a_draft_into_the_same_rows_and_audit_events(staff, operator, audit_calls):
    api = client_for(operator)
    api.post("/api/v1/experiments/", {**BODY, "key": "via-api"}, format="json")
    staff.post(ADD, _as_admin_form({**BODY, "key": "via-admin"}))
    audit_calls.clear()

    patch = {name: CHANGE[name] for name in ("name", "user_percentage", "variants")}
    assert api.patch("/api/v1/experiments/via-api/", patch, format="json").status_code == 200
    experiment = Experiment.objects.get(key="via-admin")
    stored = list(experiment.variants.order_by("position"))
    response = staff.post(f"/admin/experiments/experiment/{experiment.pk}/change/", _as_admin_form(CHANGE, stored))
    assert response.status_code == 302, _errors(response)

    assert _stored("via-admin") == _stored("via-api")
    assert _stored("via-api")[1] == [
        ("control", "Control", "Be helpful.", 2.0, True, 0),
        ("terse", "Terse", "Be terse.", 1.0, False, 1),
    ]
    assert _events(audit_calls, "via-admin") == _events(audit_calls, "via-api")
    assert _events(audit_calls, "via-api") == [
        ("experiment.updated", operator, "experiment", {"fields": ["name", "user_percentage", "variants"]})
    ]


def test_admin_renames_a_running_experiments_variant_as_the_api_does(staff, operator, audit_calls, make_experiment):
    running = make_experiment(start=True)
    audit_calls.clear()
    variants = list(running.variants.order_by("position"))
    data = {
        "name": running.name,
        "hypothesis": running.hypothesis,
        "guardrail_metrics": running.guardrail_metrics,
        "target_mde": str(running.target_mde),
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "2",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-id": str(variants[0].pk),
        "variants-0-name": variants[0].name,
        "variants-1-id": str(variants[1].pk),
        "variants-1-name": "Renamed warm",
    }
    response = staff.post(f"/admin/experiments/experiment/{running.pk}/change/", data)
    assert response.status_code == 302, _errors(response)
    assert list(running.variants.order_by("position").values_list("key", "name", "weight")) == [
        ("control", "Control", 1.0),
        ("warm", "Renamed warm", 1.0),
    ]
    assert _events(audit_calls, running.key) == [
        ("experiment.updated", operator, "experiment", {"fields": ["variants"]})
    ]


def test_admin_reports_what_the_service_refuses_instead_of_failing(staff, monkeypatch):
    def refuse(**kwargs):
        raise Conflict("An experiment with key 'admin-made' already exists.", code="duplicate_key")

    monkeypatch.setattr("experiments.services.lifecycle.experiment_create", refuse)
    response = staff.post(ADD, admin_form(), follow=True)
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not Experiment.objects.exists()
