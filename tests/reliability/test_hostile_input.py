"""Hand-written hostile input against every write endpoint.

Every answer is a 4xx error envelope or a 200/207 with per-row rejections, never a 5xx; a
request refused as a whole stores nothing; markup and spreadsheet formulas sent as data come back
inert in the admin (escaped) and in CSV exports (neutralised).
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.experiments.conftest import experiment_body

NOW = "2026-11-27T12:00:00Z"

HOSTILE_STRINGS = [
    "",
    "\x00",
    "nul\x00inside",
    "\u202eRTL override\u202c",
    "emoji \U0001f600 and 4-byte \U00010348",
    "\udcff" if False else "lone-surrogate-free",  # JSON cannot carry a lone surrogate through DRF's parser
    "x" * 10_000,
    "'; DROP TABLE audit_auditevent; --",
    "<script>alert(1)</script>",
    '=HYPERLINK("http://evil.example","x")',
]
HOSTILE_VALUES = [
    None,
    True,
    -1,
    -1e308,
    1e308,
    10**40,
    "NaN",
    "Infinity",
    "-Infinity",
    [],
    {},
    [[[[[[[[[[[]]]]]]]]]]],
]


def deep(levels: int):
    value: object = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


def result_row(**overrides):
    return {"event_id": str(uuid.uuid4()), "user_id": "u1", "variant": "control", "success": True, **overrides}


def audit_event(**overrides):
    return {"event_id": str(uuid.uuid4()), "action": "agent.tested", "details": {}, **overrides}


def operation(**overrides):
    return {"operation": "llm.call", "duration_ms": 12.5, "success": True, "occurred_at": NOW, **overrides}


def agent_run(**overrides):
    return {
        "run_id": str(uuid.uuid4()),
        "agent": "a",
        "workflow": "w",
        "steps": 1,
        "retry_count": 0,
        "no_progress_count": 0,
        "tokens": 10,
        "outcome": "success",
        "started_at": NOW,
        "finished_at": NOW,
        **overrides,
    }


# (endpoint, role, body builder for one hostile value placed in each field)
WRITE_ENDPOINTS = {
    "resolve": ("/api/v1/prompts/resolve", "agent", lambda f, v: {"user_id": "u", "prompt_type": "p", f: v}),
    "experiment_create": (
        "/api/v1/experiments/",
        "operator",
        lambda f, v: {**experiment_body(key="k"), f: v},
    ),
    "experiment_variant": (
        "/api/v1/experiments/",
        "operator",
        lambda f, v: experiment_body(key="k", variants=[{**experiment_body()["variants"][0], f: v}]),
    ),
    "experiment_update": ("/api/v1/experiments/hostile/", "operator", lambda f, v: {f: v}),
    "results": ("/api/v1/experiments/hostile/results", "agent", lambda f, v: {"results": [result_row(**{f: v})]}),
    "audit": ("/api/v1/audit/events", "agent", lambda f, v: {"events": [audit_event(**{f: v})]}),
    "operations": ("/api/v1/monitoring/operations", "agent", lambda f, v: {"operations": [operation(**{f: v})]}),
    "agent_runs": ("/api/v1/monitoring/agent-runs", "agent", lambda f, v: {"runs": [agent_run(**{f: v})]}),
    "context": ("/api/v1/enrichment/context", "agent", lambda f, v: {f: v}),
}
FIELDS = {
    "resolve": ["user_id", "prompt_type", "default_prompt"],
    "experiment_create": ["key", "name", "variants", "user_percentage", "primary_metric", "guardrail_metrics"],
    "experiment_variant": ["key", "name", "content", "weight", "is_control"],
    "experiment_update": ["name", "hypothesis", "user_percentage", "variants", "target_mde"],
    "results": ["event_id", "user_id", "variant", "response_time_ms", "tokens", "quality_score", "user_feedback"],
    "audit": ["event_id", "action", "resource_id", "severity", "details", "occurred_at"],
    "operations": ["operation", "duration_ms", "success", "occurred_at", "event_id"],
    "agent_runs": ["run_id", "steps", "tokens", "critic_score", "started_at", "outcome"],
    "context": ["web", "youtube", "crawl", "supadata", "mcp", "search"],
}


@pytest.fixture
def clients(auth_client, settings):
    """``clients(role)`` -> one client per role; a running experiment ``hostile`` exists for results."""
    settings.RATELIMIT_ENABLE = False
    cache: dict[str, APIClient] = {"operator": auth_client("operator")}
    created = cache["operator"].post(
        "/api/v1/experiments/", experiment_body(key="hostile", user_percentage=100), format="json"
    )
    assert created.status_code == 201, created.content
    assert cache["operator"].post("/api/v1/experiments/hostile/start").status_code == 200

    def get(role: str) -> APIClient:
        if role not in cache:
            cache[role] = auth_client(role)
        return cache[role]

    return get


def assert_handled(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.content[:300]!r}"
    assert response["Content-Type"].startswith("application/json"), what
    body = response.json()
    if response.status_code >= 400:
        assert set(body) == {"error"}, what
        assert {"code", "message", "request_id"} <= set(body["error"]), what


@pytest.mark.parametrize("name", list(WRITE_ENDPOINTS))
def test_every_field_of_every_write_endpoint_refuses_hostile_values_without_a_5xx(name, clients):
    url, role, build = WRITE_ENDPOINTS[name]
    client = clients(role)
    for field in FIELDS[name]:
        # deep(600): parses, and once crashed a recursive check of the audit API with a 500.
        for value in [*HOSTILE_STRINGS, *HOSTILE_VALUES, deep(200), deep(600)]:
            send = client.patch if name == "experiment_update" else client.post
            response = send(url, build(field, value), format="json")
            assert_handled(response, f"{name}.{field}={str(value)[:40]!r}")


@pytest.mark.parametrize("name", list(WRITE_ENDPOINTS))
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"null",
        b"[]",
        b'"string"',
        b"12",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"[" * 5000 + b"]" * 5000,
        b'{"x": "\\ud800"}',
        b"\xff\xfe not utf-8",
    ],
    ids=["empty", "truncated", "null", "array", "string", "number", "nan", "infinity", "deep", "surrogate", "bytes"],
)
def test_malformed_bodies_are_4xx_envelopes(name, raw, clients):
    url, role, _ = WRITE_ENDPOINTS[name]
    response = clients(role).generic(
        "PATCH" if name == "experiment_update" else "POST", url, raw, content_type="application/json"
    )
    assert_handled(response, f"{name} {raw[:20]!r}")
    # An empty PATCH changes nothing (200); enrichment answers an empty spec with empty context.
    assert response.status_code >= 400 or name == "context" or (name == "experiment_update" and raw == b"")


@pytest.mark.parametrize("name", list(WRITE_ENDPOINTS))
def test_wrong_content_type_is_a_4xx_envelope(name, clients):
    url, role, _ = WRITE_ENDPOINTS[name]
    response = clients(role).generic("POST", url, b"a=1&b=2", content_type="text/plain")
    assert_handled(response, name)
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("name", list(WRITE_ENDPOINTS))
def test_oversize_bodies_are_413_envelopes(name, clients, settings):
    url, role, _ = WRITE_ENDPOINTS[name]
    body = json.dumps({"padding": "x" * (settings.MAX_BATCH_REQUEST_BYTES + 1)})
    response = clients(role).generic("POST", url, body, content_type="application/json")
    assert_handled(response, name)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("url", "key", "row", "model_path"),
    [
        ("/api/v1/audit/events", "events", audit_event, "audit.models.AuditEvent"),
        ("/api/v1/monitoring/operations", "operations", operation, "monitoring.models.SeenEvent"),
        ("/api/v1/monitoring/agent-runs", "runs", agent_run, "monitoring.models.AgentRun"),
    ],
)
def test_an_oversize_batch_is_refused_whole_and_stores_nothing(url, key, row, model_path, clients):
    from django.utils.module_loading import import_string

    model = import_string(model_path)
    client = clients("agent")  # creating the key is itself audited: count after it
    before = model.objects.count()
    response = client.post(url, {key: [row() for _ in range(5001)]}, format="json")
    assert_handled(response, url)
    assert 400 <= response.status_code < 500
    assert model.objects.count() == before


def test_a_batch_with_one_bad_row_rejects_that_row_and_keeps_the_others(clients):
    from audit.models import AuditEvent

    events = [audit_event(), audit_event(action="\x00bad"), audit_event()]
    response = clients("agent").post("/api/v1/audit/events", {"events": events}, format="json")
    assert_handled(response, "audit")
    stored = set(AuditEvent.objects.values_list("event_id", flat=True))
    assert {uuid.UUID(events[0]["event_id"]), uuid.UUID(events[2]["event_id"])} <= stored
    assert uuid.UUID(events[1]["event_id"]) not in stored


def test_negative_durations_are_rejected_per_row(clients):
    response = clients("agent").post(
        "/api/v1/monitoring/operations", {"operations": [operation(duration_ms=-5)]}, format="json"
    )
    assert_handled(response, "operations")
    body = response.json()
    assert response.status_code >= 400 or body["rejected"] == 1


def test_a_very_long_path_id_is_a_4xx_envelope(clients):
    key = "k" * 5000
    for method, role in [("get", "analyst"), ("patch", "operator"), ("delete", "operator")]:
        response = getattr(clients(role), method)(f"/api/v1/experiments/{key}/")
        assert_handled(response, method)
        assert response.status_code == 404
    response = clients("agent").post(f"/api/v1/experiments/{key}/results", {"results": [result_row()]}, format="json")
    assert_handled(response, "results")


MARKUP = "<script>alert('x')</script>"
FORMULA = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture
def hostile_audit_events(clients):
    events = [
        audit_event(resource_type="prompt", resource_id=MARKUP, details={"note": MARKUP}),
        audit_event(resource_type="prompt", resource_id=FORMULA, details={"note": FORMULA}),
    ]
    response = clients("agent").post("/api/v1/audit/events", {"events": events}, format="json")
    assert response.status_code == 200, response.content
    return events


def test_markup_sent_as_data_is_escaped_in_the_admin(hostile_audit_events, user_factory, client):
    from audit.models import AuditEvent

    admin = user_factory(role="admin", is_superuser=True)
    client.force_login(admin)
    changelist = client.get(reverse("admin:audit_auditevent_changelist"))
    assert changelist.status_code == 200
    assert MARKUP.encode() not in changelist.content
    event = AuditEvent.objects.get(resource_id=MARKUP)
    change = client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert change.status_code == 200
    assert MARKUP.encode() not in change.content
    assert b"&lt;script&gt;" in change.content


def test_formulas_sent_as_data_are_neutralised_in_csv_exports(hostile_audit_events, user_factory, client):
    admin = user_factory(role="admin", is_superuser=True)
    client.force_login(admin)
    response = client.get(reverse("admin:audit_auditevent_export"))
    assert response.status_code == 200
    content = b"".join(response.streaming_content).decode()
    cells = [cell for line in content.splitlines() for cell in line.split(",")]
    assert not any(cell.lstrip('"').startswith("=") for cell in cells)
    assert "'=HYPERLINK" in content
