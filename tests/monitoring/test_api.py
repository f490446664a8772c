"""The ingestion and summary endpoints: validation, idempotency, permissions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest.mock import ANY

import pytest

from monitoring.models import AgentRun, OperationMinute
from tests.monitoring.conftest import make_user

pytestmark = pytest.mark.django_db

OPERATIONS_URL = "/api/v1/monitoring/operations"
RUNS_URL = "/api/v1/monitoring/agent-runs"
SUMMARY_URL = "/api/v1/monitoring/summary"


def _now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def _operation(**overrides) -> dict:
    # Two minutes ago: inside the default summary window even if the clock steps back a little.
    row = {
        "operation": "rag.retrieve",
        "duration_ms": 12.5,
        "success": True,
        "occurred_at": _now_iso(-timedelta(minutes=2)),
    }
    row.update(overrides)
    return row


def _run(**overrides) -> dict:
    now = datetime.now(UTC)
    row = {
        "run_id": "run-1",
        "agent": "support-bot",
        "workflow": "refund",
        "steps": 7,
        "retry_count": 2,
        "no_progress_count": 1,
        "critic_score": 0.8,
        "tokens": 1200,
        "outcome": "success",
        "started_at": (now - timedelta(seconds=30)).isoformat(),
        "finished_at": now.isoformat(),
    }
    row.update(overrides)
    return row


def test_operations_are_counted_and_summarised(store_name, agent_client, analyst):
    body = {"operations": [_operation(duration_ms=d, success=d < 90) for d in (10, 20, 30, 40, 100)]}
    response = agent_client.post(OPERATIONS_URL, body, format="json")
    assert response.status_code == 200
    assert response.json() == {"accepted": 5, "duplicates": 0, "rejected": []}

    agent_client.force_authenticate(analyst)
    summary = agent_client.get(SUMMARY_URL, {"operation": "rag.retrieve"}).json()
    assert (summary["count"], summary["errors"], summary["error_rate"]) == (5, 1, 0.2)
    assert summary["p50"] == pytest.approx(30.0, rel=0.01)
    assert summary["p99"] == pytest.approx(40.0, rel=0.01)  # rank floor(0.99 * 4) = 3
    assert summary["relative_error"] == 0.01


def test_a_repeated_event_id_is_counted_once(store_name, agent_client):
    first = agent_client.post(OPERATIONS_URL, {"operations": [_operation(event_id="e-1")]}, format="json")
    again = agent_client.post(
        OPERATIONS_URL, {"operations": [_operation(event_id="e-1"), _operation(event_id="e-2")]}, format="json"
    )
    assert first.json()["accepted"] == 1
    assert (again.json()["accepted"], again.json()["duplicates"]) == (1, 1)


def test_a_batch_refused_with_503_is_counted_when_retried(store_name, agent_client, monkeypatch):
    """The ids a refused batch marked are forgotten: the client's retry is not a duplicate."""
    from agentplatform.errors import DependencyUnavailable
    from monitoring import services

    real_submit = services.operations_submit

    def database_down(increments):  # the writer's answer when the database refuses the counts
        raise DependencyUnavailable("The database is unavailable; retry later.", retry_after=5)

    body = {"operations": [_operation(event_id="r-1"), _operation(event_id="r-2")]}
    monkeypatch.setattr(services, "operations_submit", database_down)
    assert agent_client.post(OPERATIONS_URL, body, format="json").status_code == 503
    monkeypatch.setattr(services, "operations_submit", real_submit)
    retried = agent_client.post(OPERATIONS_URL, body, format="json").json()
    assert (retried["accepted"], retried["duplicates"]) == (2, 0)
    again = agent_client.post(OPERATIONS_URL, body, format="json").json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)


def test_a_repeated_event_id_within_one_batch_is_counted_once(store_name, agent_client):
    response = agent_client.post(
        OPERATIONS_URL, {"operations": [_operation(event_id="e-9"), _operation(event_id="e-9")]}, format="json"
    )
    assert (response.json()["accepted"], response.json()["duplicates"]) == (1, 1)


@pytest.mark.parametrize(
    ("row", "field", "code"),
    [
        (_operation(duration_ms=-1), "duration_ms", "out_of_range"),
        (_operation(duration_ms="12"), "duration_ms", "invalid"),
        (_operation(duration_ms=True), "duration_ms", "invalid"),
        (_operation(duration_ms=10**12), "duration_ms", "out_of_range"),
        (_operation(duration_ms=None), "duration_ms", "required"),
        (_operation(operation=""), "operation", "invalid"),
        (_operation(operation=None), "operation", "required"),
        (_operation(operation="x" * 201), "operation", "invalid"),
        (_operation(operation="a|b"), "operation", "invalid"),
        (_operation(success="yes"), "success", "invalid"),
        (_operation(occurred_at="yesterday"), "occurred_at", "invalid"),
        (_operation(occurred_at="2026-01-01T00:00:00"), "occurred_at", "invalid"),
        (_operation(occurred_at=_now_iso(timedelta(days=30))), "occurred_at", "out_of_range"),
        (_operation(occurred_at=_now_iso(-timedelta(days=30))), "occurred_at", "out_of_range"),
        (_operation(event_id="has space"), "event_id", "invalid"),
        ("not an object", "non_field_errors", "invalid"),
    ],
)
def test_invalid_operation_rows_are_rejected_by_index_field_and_code(agent_client, row, field, code):
    response = agent_client.post(OPERATIONS_URL, {"operations": [_operation(), row]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    assert [(rejection["index"], list(rejection["errors"])) for rejection in body["rejected"]] == [(1, [field])]
    assert body["rejected"][0]["errors"][field][0]["code"] == code


def test_nan_in_the_body_is_refused_as_malformed_json(agent_client):
    raw = '{"operations": [{"operation": "x", "duration_ms": NaN, "success": true, "occurred_at": "%s"}]}'
    response = agent_client.post(OPERATIONS_URL, raw.replace("%s", _now_iso()), content_type="application/json")
    assert response.status_code == 400


def test_an_overflowing_duration_is_rejected_as_not_finite(agent_client):
    raw = '{"operations": [{"operation": "x", "duration_ms": 1e999, "success": true, "occurred_at": "%s"}]}'
    response = agent_client.post(OPERATIONS_URL, raw.replace("%s", _now_iso()), content_type="application/json")
    assert response.status_code == 200
    assert list(response.json()["rejected"][0]["errors"]) == ["duration_ms"]


@pytest.mark.parametrize("count", [0, 5001])
def test_batches_outside_1_to_5000_rows_are_refused(agent_client, count):
    response = agent_client.post(OPERATIONS_URL, {"operations": [_operation()] * count}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_a_batch_of_5000_rows_is_accepted(store_name, agent_client):
    rows = [_operation(duration_ms=i % 500 + 0.5, event_id=f"big-{i}") for i in range(5000)]
    response = agent_client.post(OPERATIONS_URL, {"operations": rows}, format="json")
    assert response.json()["accepted"] == 5000


def test_pushing_requires_the_push_permission(api_client, analyst):
    api_client.force_authenticate(analyst)
    response = api_client.post(OPERATIONS_URL, {"operations": [_operation()]}, format="json")
    assert response.status_code == 403


def test_reading_the_summary_requires_the_view_permission(agent_client):
    assert agent_client.get(SUMMARY_URL).status_code == 403


def test_anonymous_callers_are_refused(api_client):
    assert api_client.get(SUMMARY_URL).status_code in (401, 403)


def test_summary_without_operation_lists_every_operation_busiest_first(store_name, agent_client, analyst):
    rows = [_operation(operation="a")] + [_operation(operation="b")] * 3
    agent_client.post(OPERATIONS_URL, {"operations": rows}, format="json")
    agent_client.force_authenticate(analyst)
    body = agent_client.get(SUMMARY_URL).json()
    assert [(item["operation"], item["count"]) for item in body["operations"]] == [("b", 3), ("a", 1)]


def test_summary_of_an_unknown_operation_is_empty(analyst_client):
    body = analyst_client.get(SUMMARY_URL, {"operation": "nothing"}).json()
    assert (body["count"], body["p50"], body["error_rate"]) == (0, None, 0.0)


@pytest.mark.parametrize(
    "params",
    [
        {"since": "not-a-date"},
        {"since": "2026-01-01T00:00:00"},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "2025-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    ],
)
def test_summary_rejects_bad_windows(analyst_client, params):
    response = analyst_client.get(SUMMARY_URL, params)
    assert response.status_code == 400


def test_agent_runs_are_stored_once_per_run_id(agent_client, agent):
    first = agent_client.post(RUNS_URL, {"runs": [_run()]}, format="json")
    again = agent_client.post(RUNS_URL, {"runs": [_run(), _run(run_id="run-2")]}, format="json")
    assert first.json()["accepted"] == 1
    assert (again.json()["accepted"], again.json()["duplicates"]) == (1, 1)
    run = AgentRun.objects.get(run_id="run-1")
    assert (run.agent, run.workflow, run.retry_count, run.outcome, run.submitted_by) == (
        "support-bot",
        "refund",
        2,
        "success",
        agent,
    )


@pytest.mark.parametrize(
    ("row", "field", "code"),
    [
        (_run(outcome="crashed"), "outcome", "invalid"),
        (_run(outcome=None), "outcome", "required"),
        (_run(steps=-1), "steps", "out_of_range"),
        (_run(steps=1.5), "steps", "invalid"),
        (_run(retry_count=None), "retry_count", "required"),
        (_run(critic_score=-0.1), "critic_score", "out_of_range"),
        (_run(tokens="many"), "tokens", "invalid"),
        (_run(agent="x" * 101), "agent", "invalid"),
        (_run(workflow=""), "workflow", "invalid"),
        (_run(run_id="bad id"), "run_id", "invalid"),
        (_run(started_at=_now_iso(), finished_at=_now_iso(-timedelta(hours=1))), "finished_at", "out_of_range"),
    ],
)
def test_invalid_agent_runs_are_rejected_by_index_field_and_code(agent_client, row, field, code):
    response = agent_client.post(RUNS_URL, {"runs": [_run(run_id="ok"), row]}, format="json")
    assert response.status_code == 200
    assert response.json()["rejected"] == [{"index": 1, "errors": {field: [{"code": code, "message": ANY}]}}]
    assert AgentRun.objects.filter(run_id="ok").exists()


def test_critic_score_may_be_omitted(agent_client):
    row = _run()
    del row["critic_score"]
    assert agent_client.post(RUNS_URL, {"runs": [row]}, format="json").json()["accepted"] == 1
    assert AgentRun.objects.get().critic_score is None


def test_ingestion_of_event_ids_answers_503_when_redis_is_down(agent_client, settings):
    settings.MONITORING_STORE = "redis"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = agent_client.post(OPERATIONS_URL, {"operations": [_operation(event_id="e-1")]}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert not OperationMinute.objects.exists()  # nothing acknowledged, nothing stored


def test_operations_without_event_ids_need_no_redis(agent_client, settings):
    # Redis only deduplicates event ids: the counts go to the database.
    settings.MONITORING_STORE = "redis"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = agent_client.post(OPERATIONS_URL, {"operations": [_operation()] * 2}, format="json")
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert OperationMinute.objects.get().count == 2


# --- who files a run: an agent (API key) files its own, and its ids are its own ------------------
@pytest.fixture
def two_agents(django_user_model):
    """Two agents with API keys, as clients that authenticate like a real agent (not forced)."""
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    clients = {}
    for name in ("agent1", "agent2"):
        user = make_user(django_user_model, name, "monitoring.push_metrics", role="agent")
        _, raw_key = api_key_create(user=user, name="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
        client.user = user
        clients[name] = client
    return clients


def test_an_agent_cannot_file_a_run_under_another_agents_name(two_agents):
    attack = two_agents["agent1"].post(
        RUNS_URL, {"runs": [_run(run_id="shared-1", agent="agent2", outcome="failure")]}, format="json"
    )
    assert attack.status_code == 403
    assert attack.json()["error"]["code"] == "permission_denied"
    assert attack.json()["error"]["details"] == {"index": 0, "field": "agent", "agent": "agent1"}
    assert not AgentRun.objects.exists()
    real = two_agents["agent2"].post(RUNS_URL, {"runs": [_run(run_id="shared-1", agent="agent2")]}, format="json")
    assert real.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert AgentRun.objects.get().submitted_by == two_agents["agent2"].user


def test_a_run_id_is_unique_per_submitter_so_another_agent_cannot_take_it(two_agents):
    first = two_agents["agent1"].post(RUNS_URL, {"runs": [_run(run_id="shared-1", agent="agent1")]}, format="json")
    second = two_agents["agent2"].post(RUNS_URL, {"runs": [_run(run_id="shared-1", agent="agent2")]}, format="json")
    retried = two_agents["agent2"].post(RUNS_URL, {"runs": [_run(run_id="shared-1", agent="agent2")]}, format="json")
    assert (first.json()["accepted"], second.json()["accepted"]) == (1, 1)
    assert (retried.json()["accepted"], retried.json()["duplicates"]) == (0, 1)
    assert sorted(AgentRun.objects.values_list("agent", "submitted_by__username")) == [
        ("agent1", "agent1"),
        ("agent2", "agent2"),
    ]


def test_a_run_without_an_agent_is_filed_under_the_callers_name(two_agents):
    row = _run()
    del row["agent"]
    assert two_agents["agent1"].post(RUNS_URL, {"runs": [row]}, format="json").json()["accepted"] == 1
    assert AgentRun.objects.get().agent == "agent1"


def test_a_caller_whose_name_is_too_long_for_an_agent_gets_a_400_not_a_500(agent_client, agent):
    agent.username = "a" * 150  # usernames may be longer than AgentRun.agent
    agent.save(update_fields=["username"])
    row = _run()
    del row["agent"]
    response = agent_client.post(RUNS_URL, {"runs": [row]}, format="json")
    assert response.status_code == 400
    assert "agent" in response.json()["error"]["details"]
    assert not AgentRun.objects.exists()


def test_a_person_with_the_permission_may_file_runs_for_a_named_agent(agent_client, agent):
    # A forced (session-like) login is not an API key: people importing runs name the agent.
    response = agent_client.post(RUNS_URL, {"runs": [_run(agent="imported-bot")]}, format="json")
    assert response.json()["accepted"] == 1
    assert (AgentRun.objects.get().agent, AgentRun.objects.get().submitted_by) == ("imported-bot", agent)


def test_operation_event_ids_are_unique_per_submitter(store_name, two_agents):
    body = {"operations": [_operation(event_id="op-1")]}
    assert two_agents["agent1"].post(OPERATIONS_URL, body, format="json").json()["accepted"] == 1
    assert two_agents["agent2"].post(OPERATIONS_URL, body, format="json").json()["accepted"] == 1
    assert two_agents["agent2"].post(OPERATIONS_URL, body, format="json").json()["duplicates"] == 1


def test_a_100_character_event_id_is_counted_once_in_either_store(store_name, agent_client):
    body = {"operations": [_operation(event_id="e" * 100)]}
    assert agent_client.post(OPERATIONS_URL, body, format="json").json()["accepted"] == 1
    assert agent_client.post(OPERATIONS_URL, body, format="json").json()["duplicates"] == 1


def test_an_id_ending_in_a_newline_is_refused(agent_client):
    # "$" would let "e-1\n" through, and the store joins ids with newlines.
    response = agent_client.post(OPERATIONS_URL, {"operations": [_operation(event_id="e-1\n")]}, format="json")
    assert [list(row["errors"]) for row in response.json()["rejected"]] == [["event_id"]]
