"""The registry's REST contract: prompts, immutable versions, label moves and their history, per role."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from prompts.models import Prompt, PromptLabel, PromptLabelMove, PromptVersion

pytestmark = pytest.mark.django_db

LIST = "/api/v1/prompts/"


def detail(key: str) -> str:
    return f"/api/v1/prompts/{key}"


def versions(key: str) -> str:
    return f"/api/v1/prompts/{key}/versions"


def label_url(key: str, label: str) -> str:
    return f"/api/v1/prompts/{key}/labels/{label}"


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATELIMIT_ENABLE = False


@pytest.fixture
def operator(auth_client):
    return auth_client("operator")


@pytest.fixture
def admin(auth_client):
    return auth_client("admin")


@pytest.fixture
def analyst(auth_client):
    return auth_client("analyst")


@pytest.fixture
def agent(auth_client):
    return auth_client("agent")


@pytest.fixture
def support(operator):
    """Prompt ``support`` with versions 1 and 2; ``staging`` on 1."""
    assert operator.post(LIST, {"key": "support", "description": "Support agent"}, format="json").status_code == 201
    first = operator.post(versions("support"), {"content": "Hi {{name}}", "labels": ["staging"]}, format="json")
    assert first.status_code == 201, first.json()
    second = operator.post(versions("support"), {"content": "Hello {{name}}, about {{topic}}"}, format="json")
    assert second.status_code == 201, second.json()
    return "support"


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]["code"]


# --- prompts --------------------------------------------------------------------------------------


def test_create_answers_201_with_the_detail_shape(operator):
    response = operator.post(LIST, {"key": "triage.v2", "description": "Sorts tickets"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["key"] == "triage.v2" and body["description"] == "Sorts tickets"
    assert body["labels"] == {} and body["latest_version"] is None and body["version_count"] == 0
    assert body["protected_labels"] == ["production"]
    assert {"created_at", "updated_at"} <= set(body)
    assert Prompt.objects.get(key="triage.v2").created_by == operator.user


def test_create_takes_protected_labels_and_refuses_duplicates_reserved_keys_and_unknown_fields(operator):
    response = operator.post(LIST, {"key": "p", "protected_labels": ["production", "staging"]}, format="json")
    assert response.json()["protected_labels"] == ["production", "staging"]
    again = operator.post(LIST, {"key": "p"}, format="json")
    assert again.status_code == 409 and error_code(again) == "duplicate_key"
    for body, field in [
        ({"key": "resolve"}, "key"),
        ({"key": "has space"}, "key"),
        ({"key": 5}, "key"),
        ({"key": "q", "owner": "me"}, "owner"),
        ({"key": "q", "protected_labels": ["latest"]}, "protected_labels"),
        ({"key": "q", "description": "nul\x00"}, "description"),
    ]:
        refused = operator.post(LIST, body, format="json")
        assert refused.status_code == 400, body
        assert field in refused.json()["error"]["details"], (body, refused.json())
    assert not Prompt.objects.filter(key="q").exists()


def test_readers_read_and_only_writers_create(analyst, agent, support):
    for client in (analyst, agent):
        assert client.get(LIST).status_code == 200
        assert client.get(detail(support)).status_code == 200
        refused = client.post(LIST, {"key": "x"}, format="json")
        assert refused.status_code == 403 and error_code(refused) == "permission_denied"
    assert not Prompt.objects.filter(key="x").exists()


def test_detail_shows_labels_latest_version_and_protection(analyst, support):
    body = analyst.get(detail(support)).json()
    assert body["labels"] == {"staging": 1}
    assert body["latest_version"] == 2 and body["version_count"] == 2
    assert body["protected_labels"] == ["production"]
    missing = analyst.get(detail("nothing-here"))
    assert missing.status_code == 404 and error_code(missing) == "not_found"


def test_list_is_paginated_and_searchable(operator, analyst):
    for key, description in [("alpha", "first"), ("beta", "second one"), ("gamma", "third")]:
        operator.post(LIST, {"key": key, "description": description}, format="json")
    page = analyst.get(LIST + "?limit=2").json()
    assert page["count"] == 3 and [p["key"] for p in page["results"]] == ["alpha", "beta"]
    assert page["next"] is not None
    assert [p["key"] for p in analyst.get(LIST + "?limit=2&offset=2").json()["results"]] == ["gamma"]
    assert [p["key"] for p in analyst.get(LIST + "?search=SECOND").json()["results"]] == ["beta"]
    assert [p["key"] for p in analyst.get(LIST + "?search=amm").json()["results"]] == ["gamma"]
    assert analyst.get(LIST + "?limit=0").status_code == 400
    assert analyst.get(LIST + "?search=a%00b").status_code == 400


def test_patch_changes_the_description_and_protection_needs_the_permission(operator, admin, support):
    changed = operator.patch(detail(support), {"description": "New words"}, format="json")
    assert changed.status_code == 200 and changed.json()["description"] == "New words"
    refused = operator.patch(detail(support), {"protected_labels": []}, format="json")
    assert refused.status_code == 403
    assert Prompt.objects.get(key=support).protected_labels == ["production"]
    allowed = admin.patch(detail(support), {"protected_labels": ["production", "staging"]}, format="json")
    assert allowed.status_code == 200 and allowed.json()["protected_labels"] == ["production", "staging"]
    unknown = operator.patch(detail(support), {"key": "renamed"}, format="json")
    assert unknown.status_code == 400 and "key" in unknown.json()["error"]["details"]


# --- versions -------------------------------------------------------------------------------------


def test_create_version_answers_the_version_with_its_labels(operator, django_capture_on_commit_callbacks):
    operator.post(LIST, {"key": "welcome"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            versions("welcome"),
            {
                "content": "Welcome {{ user }} to {{product}}",
                "config": {"model": "gpt-x", "temperature": 0.2, "tools": [{"name": "search"}]},
                "message": "first draft",
                "labels": ["staging", "canary"],
            },
            format="json",
        )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["key"] == "welcome" and body["version"] == 1
    assert body["content"] == "Welcome {{ user }} to {{product}}"
    assert body["config"] == {"model": "gpt-x", "temperature": 0.2, "tools": [{"name": "search"}]}
    assert body["message"] == "first draft"
    assert body["variables"] == ["user", "product"]
    assert body["labels"] == ["canary", "staging"]
    assert body["created_by"] == operator.user.username
    assert len(body["content_hash"]) == 64 and body["created_at"]
    assert PromptVersion.objects.get(prompt__key="welcome").content_hash == body["content_hash"]
    actions = list(AuditEvent.objects.filter(resource_id="welcome").values_list("action", flat=True))
    assert actions.count("prompt.version_created") == 1 and actions.count("prompt.label_moved") == 2


def test_versions_are_numbered_in_order_and_listed_newest_first(operator, analyst, support):
    operator.post(versions(support), {"content": "Third"}, format="json")
    page = analyst.get(versions(support) + "?limit=2").json()
    assert page["count"] == 3
    assert [v["version"] for v in page["results"]] == [3, 2]
    assert [v["version"] for v in analyst.get(versions(support) + "?offset=2").json()["results"]] == [1]
    assert page["results"][1]["variables"] == ["name", "topic"]
    one = analyst.get(versions(support) + "/1").json()
    assert one["version"] == 1 and one["labels"] == ["staging"] and one["content"] == "Hi {{name}}"


def test_a_missing_version_or_prompt_is_a_404(analyst, operator, support):
    for url in (versions(support) + "/9", versions(support) + "/99999999999999999999", versions("nope") + "/1"):
        response = analyst.get(url)
        assert response.status_code == 404, url
        assert error_code(response) == "not_found"
    assert operator.post(versions("nope"), {"content": "x"}, format="json").status_code == 404


def test_versions_are_immutable_at_the_api_door(operator, admin, support):
    before = PromptVersion.objects.get(prompt__key=support, version=1).content
    for client in (operator, admin):
        for method in ("put", "patch", "delete"):
            response = getattr(client, method)(versions(support) + "/1", {"content": "changed"}, format="json")
            assert response.status_code == 405, (method, response.content)
            assert error_code(response) == "method_not_allowed"
            assert "immutable" in response.json()["error"]["message"]
    assert PromptVersion.objects.get(prompt__key=support, version=1).content == before
    assert PromptVersion.objects.filter(prompt__key=support).count() == 2


def test_moving_a_protected_label_with_a_new_version_needs_the_permission_and_stores_nothing(
    operator, admin, support, django_capture_on_commit_callbacks
):
    audit_before = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        refused = operator.post(versions(support), {"content": "Ship it", "labels": ["production"]}, format="json")
    assert refused.status_code == 403 and error_code(refused) == "permission_denied"
    assert "production" in refused.json()["error"]["message"]
    assert PromptVersion.objects.filter(prompt__key=support).count() == 2
    assert not PromptLabel.objects.filter(prompt__key=support, name="production").exists()
    assert AuditEvent.objects.count() == audit_before
    allowed = admin.post(versions(support), {"content": "Ship it", "labels": ["production"]}, format="json")
    assert allowed.status_code == 201 and allowed.json()["version"] == 3 and allowed.json()["labels"] == ["production"]


def test_readers_cannot_create_versions(analyst, agent, support):
    for client in (analyst, agent):
        assert client.post(versions(support), {"content": "x"}, format="json").status_code == 403
        assert client.get(versions(support)).status_code == 200
    assert PromptVersion.objects.filter(prompt__key=support).count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({"content": 12}, "content"),
        ({"content": "nul\x00inside"}, "content"),
        ({"content": "x" * 100_001}, "content"),
        ({"content": "ok", "config": []}, "config"),
        ({"content": "ok", "config": "model"}, "config"),
        ({"content": "ok", "config": {"k\x00": 1}}, "config"),
        ({"content": "ok", "config": {"k": ["v\x00"]}}, "config"),
        ({"content": "ok", "config": {"blob": "x" * 17_000}}, "config"),
        ({"content": "ok", "message": "m" * 501}, "message"),
        ({"content": "ok", "message": None}, "message"),
        ({"content": "ok", "labels": ["latest"]}, "labels"),
        ({"content": "ok", "labels": ["Bad Label"]}, "labels"),
        ({"content": "ok", "labels": "staging"}, "labels"),
        ({"content": "ok", "version": 7}, "version"),
    ],
)
def test_a_bad_version_is_a_400_naming_the_field_and_stores_nothing(operator, support, body, field):
    response = operator.post(versions(support), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]
    assert PromptVersion.objects.filter(prompt__key=support).count() == 2


def nested(levels: int) -> dict:
    config: dict = {"leaf": 1}
    for _ in range(levels):
        config = {"a": [config]}
    return config


def test_a_deeply_nested_config_is_a_400(operator, support):
    # 40 levels: the body parses (the parser's own cap is 64), the service's cap refuses it.
    response = operator.post(versions(support), {"content": "ok", "config": nested(20)}, format="json")
    assert response.status_code == 400 and "config" in response.json()["error"]["details"]
    too_deep_to_parse = operator.post(versions(support), {"content": "ok", "config": nested(100)}, format="json")
    assert too_deep_to_parse.status_code == 400
    assert PromptVersion.objects.filter(prompt__key=support).count() == 2


def test_a_lone_surrogate_in_the_content_is_a_400(operator, support):
    raw = json.dumps({"content": "agent\ud8cd"}).encode()
    response = operator.generic("POST", versions(support), raw, content_type="application/json")
    assert response.status_code == 400
    assert PromptVersion.objects.filter(prompt__key=support).count() == 2


# --- labels ---------------------------------------------------------------------------------------


def test_operators_move_unprotected_labels_and_the_answer_says_from_where(
    operator, support, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.put(label_url(support, "staging"), {"version": 2, "reason": "try v2"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"key": support, "label": "staging", "version": 2, "from_version": 1, "moved": True}
    assert PromptLabel.objects.get(prompt__key=support, name="staging").version.version == 2
    event = AuditEvent.objects.filter(action="prompt.label_moved", resource_id=support).latest("id")
    assert event.details["from_version"] == 1 and event.details["to_version"] == 2
    assert event.details["reason"] == "try v2"
    again = operator.put(label_url(support, "staging"), {"version": 2}, format="json")
    assert again.json() == {"key": support, "label": "staging", "version": 2, "from_version": 2, "moved": False}
    new_label = operator.put(label_url(support, "canary"), {"version": 1}, format="json")
    assert new_label.json()["from_version"] is None and new_label.json()["moved"] is True


def test_protected_labels_are_refused_to_operators_and_allowed_to_admins(operator, admin, support):
    refused = operator.put(label_url(support, "production"), {"version": 2}, format="json")
    assert refused.status_code == 403 and error_code(refused) == "permission_denied"
    assert "prompts.move_protected_label" in refused.json()["error"]["message"]
    assert not PromptLabel.objects.filter(prompt__key=support, name="production").exists()
    allowed = admin.put(label_url(support, "production"), {"version": 2, "reason": "ship"}, format="json")
    assert allowed.status_code == 200 and allowed.json()["moved"] is True
    rollback = admin.put(label_url(support, "production"), {"version": 1, "reason": "rollback"}, format="json")
    assert rollback.json()["from_version"] == 2 and rollback.json()["version"] == 1


def test_label_moves_refuse_latest_bad_names_missing_versions_and_readers(operator, analyst, agent, support):
    latest = operator.put(label_url(support, "latest"), {"version": 1}, format="json")
    assert latest.status_code == 400 and "label" in latest.json()["error"]["details"]
    assert operator.put(label_url(support, "Bad_Name"), {"version": 1}, format="json").status_code == 400
    missing = operator.put(label_url(support, "staging"), {"version": 9}, format="json")
    assert missing.status_code == 404
    for body in ({}, {"version": "2"}, {"version": 2.0}, {"version": True}, {"version": 0}, {"version": 2, "x": 1}):
        assert operator.put(label_url(support, "staging"), body, format="json").status_code == 400, body
    assert operator.put(label_url("nope", "staging"), {"version": 1}, format="json").status_code == 404
    for client in (analyst, agent):
        assert client.put(label_url(support, "staging"), {"version": 2}, format="json").status_code == 403
    assert PromptLabel.objects.get(prompt__key=support, name="staging").version.version == 1
    assert PromptLabelMove.objects.filter(prompt__key=support).count() == 1


def test_label_history_lists_moves_newest_first(operator, admin, analyst, support):
    operator.put(label_url(support, "staging"), {"version": 2, "reason": "try v2"}, format="json")
    admin.put(label_url(support, "staging"), {"version": 1, "reason": "back"}, format="json")
    admin.put(label_url(support, "production"), {"version": 2}, format="json")
    history = analyst.get(label_url(support, "staging") + "/history").json()
    assert history["count"] == 3
    rows = [(row["from"], row["to"], row["actor"], row["reason"]) for row in history["results"]]
    assert rows == [
        (2, 1, admin.user.username, "back"),
        (1, 2, operator.user.username, "try v2"),
        (None, 1, operator.user.username, ""),
    ]
    assert all(row["moved_at"] for row in history["results"])
    second = analyst.get(label_url(support, "staging") + "/history?limit=1&offset=1").json()
    assert [row["to"] for row in second["results"]] == [2]
    assert analyst.get(label_url(support, "unused") + "/history").json()["count"] == 0
    assert analyst.get(label_url(support, "latest") + "/history").status_code == 404
    assert analyst.get(label_url("nope", "staging") + "/history").status_code == 404


def test_an_operator_may_protect_more_but_not_create_a_prompt_with_production_unprotected(operator, admin):
    for body in ({"key": "open", "protected_labels": []}, {"key": "open", "protected_labels": ["staging"]}):
        refused = operator.post(LIST, body, format="json")
        assert refused.status_code == 403 and error_code(refused) == "permission_denied"
        assert "production" in refused.json()["error"]["message"]
    assert not Prompt.objects.filter(key="open").exists()
    more = operator.post(LIST, {"key": "guarded", "protected_labels": ["production", "staging"]}, format="json")
    assert more.status_code == 201
    allowed = admin.post(LIST, {"key": "open", "protected_labels": []}, format="json")
    assert allowed.status_code == 201 and allowed.json()["protected_labels"] == []


def test_the_label_read_says_when_the_prompt_itself_is_unknown(agent, support):
    unknown = agent.get(label_url("nope", "production"))
    assert unknown.status_code == 404 and "No prompt 'nope'" in unknown.json()["error"]["message"]
    unset = agent.get(label_url(support, "canary"))
    assert unset.status_code == 404 and "no version under the label 'canary'" in unset.json()["error"]["message"]
