"""Hand-written hostile input against every write endpoint and every query parameter.

Every answer is a 4xx error envelope or a 200 with per-row rejections, never a 5xx; a
request refused as a whole stores nothing; markup and spreadsheet formulas sent as data come back
inert in the admin (escaped) and in CSV exports (neutralised). The query parameters are read from
the OpenAPI schema, so a new GET endpoint or parameter is covered without editing this file.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone
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
    # No "agent": an agent files its runs under its own name.
    return {
        "run_id": str(uuid.uuid4()),
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
    "prompt_create": ("/api/v1/prompts/", "operator", lambda f, v: {"key": "k", f: v}),
    "prompt_update": ("/api/v1/prompts/hostile", "operator", lambda f, v: {f: v}),
    "prompt_version": ("/api/v1/prompts/hostile/versions", "operator", lambda f, v: {"content": "c", f: v}),
    "prompt_label": ("/api/v1/prompts/hostile/labels/staging", "operator", lambda f, v: {"version": 1, f: v}),
    "model_price": (
        "/api/v1/model-prices",
        "admin",
        lambda f, v: {
            "model": "hostile-*",
            "input_per_million": "1",
            "output_per_million": "2",
            "valid_from": "2026-01-01T00:00:00Z",
            f: v,
        },
    ),
}
# The method each write endpoint takes (POST unless named here).
METHODS = {"experiment_update": "PATCH", "prompt_update": "PATCH", "prompt_label": "PUT"}
FIELDS = {
    "model_price": [
        "provider",
        "model",
        "input_per_million",
        "cached_input_per_million",
        "output_per_million",
        "currency",
        "valid_from",
        "note",
    ],
    "resolve": ["user_id", "prompt_type", "default_prompt"],
    "experiment_create": ["key", "name", "variants", "user_percentage", "primary_metric", "guardrail_metrics"],
    "experiment_variant": ["key", "name", "content", "weight", "is_control"],
    "experiment_update": ["name", "hypothesis", "user_percentage", "variants", "target_mde"],
    "results": [
        "event_id",
        "user_id",
        "variant",
        "occurred_at",
        "success",
        "response_time_ms",
        "tokens",
        "quality_score",
        "user_feedback",
        "model",
    ],
    "audit": ["event_id", "action", "resource_type", "resource_id", "severity", "success", "details", "occurred_at"],
    "operations": ["operation", "duration_ms", "success", "occurred_at", "event_id"],
    "agent_runs": [
        "run_id",
        "agent",
        "workflow",
        "steps",
        "retry_count",
        "no_progress_count",
        "tokens",
        "critic_score",
        "started_at",
        "finished_at",
        "outcome",
    ],
    "context": ["web", "youtube", "crawl", "supadata", "mcp", "search"],
    "prompt_create": ["key", "description", "protected_labels"],
    "prompt_update": ["description", "protected_labels"],
    "prompt_version": ["content", "config", "message", "labels"],
    "prompt_label": ["version", "reason"],
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
    # Prompt ``hostile`` with version 1 under ``production`` and ``staging``, for the registry's endpoints
    # (written by the system: an operator may not move the protected production label).
    from prompts import services as prompt_services

    prompt = prompt_services.prompt_create(actor=None, key="hostile")
    prompt_services.prompt_version_create(
        actor=None, prompt=prompt, content="Hostile {{x}}", labels=["production", "staging"]
    )

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
            send = getattr(client, METHODS.get(name, "POST").lower())
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
    method = METHODS.get(name, "POST")
    response = clients(role).generic(method, url, raw, content_type="application/json")
    assert_handled(response, f"{name} {raw[:20]!r}")
    # An empty PATCH changes nothing (200); enrichment answers an empty spec with empty context.
    assert response.status_code >= 400 or name == "context" or (method == "PATCH" and raw == b"")


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
    assert response.status_code == 200
    assert [(row["index"], list(row["errors"])) for row in response.json()["rejected"]] == [(0, ["duration_ms"])]


def test_a_very_long_path_id_is_a_4xx_envelope(clients):
    key = "k" * 5000
    for method, role in [("get", "analyst"), ("patch", "operator"), ("delete", "operator")]:
        response = getattr(clients(role), method)(f"/api/v1/experiments/{key}/")
        assert_handled(response, method)
        assert response.status_code == 404
    response = clients("agent").post(f"/api/v1/experiments/{key}/results", {"results": [result_row()]}, format="json")
    assert_handled(response, "results")


# --- what schemathesis found against the batch endpoints --------------------------------------
# Each batch endpoint, its body key, a valid row builder, and the row's string and timestamp fields.
BATCH_ENDPOINTS = {
    "results": (
        "/api/v1/experiments/hostile/results",
        "results",
        result_row,
        ["event_id", "user_id", "variant", "model"],
        ["occurred_at"],
    ),
    "audit": (
        "/api/v1/audit/events",
        "events",
        audit_event,
        ["event_id", "action", "resource_type", "resource_id", "severity"],
        ["occurred_at"],
    ),
    "operations": (
        "/api/v1/monitoring/operations",
        "operations",
        operation,
        ["operation", "event_id"],
        ["occurred_at"],
    ),
    "agent_runs": (
        "/api/v1/monitoring/agent-runs",
        "runs",
        agent_run,
        ["run_id", "agent", "workflow", "outcome"],
        ["started_at", "finished_at"],
    ),
}
# Years 30, 732 and 7154 with offsets that move the instant across a day, and the edges of Python's
# datetime (an offset that takes year 1 or 9999 past them), a February 30th and a 25-hour offset.
OUT_OF_RANGE_TIMESTAMPS = [
    "0030-01-01T00:00:00-14:59",
    "0732-06-15T12:30:00+14:59",
    "7154-03-01T00:00:00-14:59",
    "0001-01-01T00:00:00+14:59",
    "9999-12-31T23:59:59-14:59",
    "2026-02-30T00:00:00Z",
    "2026-11-27T12:00:00+25:00",
]
# The last: an integer no float can hold (float() raises OverflowError on it).
HUGE_NUMBERS = ["1e136", "-1e136", "9.99e135", "1e308", "123456789012345678901234567890", "1" + "0" * 400]


def _raw_batch(key: str, row: dict) -> bytes:
    return json.dumps({key: [row]}).encode()


@pytest.mark.parametrize("name", list(BATCH_ENDPOINTS))
def test_lone_surrogates_in_any_string_of_a_batch_row_are_a_400_envelope(name, clients):
    url, key, build, strings, _ = BATCH_ENDPOINTS[name]
    client = clients("agent")
    for field in strings:
        # json.dumps escapes the lone surrogate as \ud8cd: the bytes schemathesis sent.
        body = _raw_batch(key, build(**{field: "agent\ud8cd"}))
        response = client.generic("POST", url, body, content_type="application/json")
        assert_handled(response, f"{name}.{field}")
        assert response.status_code == 400, f"{name}.{field}"
        assert response.json()["error"]["code"] == "malformed_request"
    nested = _raw_batch(key, build(details={"k\udfff": ["\ud8cd"]})) if name == "audit" else None
    if nested:
        response = client.generic("POST", url, nested, content_type="application/json")
        assert_handled(response, f"{name}.details")
        assert response.status_code == 400


@pytest.mark.parametrize("name", list(BATCH_ENDPOINTS))
def test_timestamps_out_of_range_are_per_row_rejections(name, clients):
    url, key, build, _, timestamps = BATCH_ENDPOINTS[name]
    client = clients("agent")
    for field in timestamps:
        for value in OUT_OF_RANGE_TIMESTAMPS:
            response = client.post(url, {key: [build(), build(**{field: value})]}, format="json")
            what = f"{name}.{field}={value}"
            assert_handled(response, what)
            assert response.status_code == 200, what
            rejections = {row["index"]: row["errors"] for row in response.json()["rejected"]}
            # (The results' row 0 may be refused too: its user is not assigned "control".)
            assert 1 in rejections, what
            [(rejected_field, errors)] = rejections[1].items()
            assert rejected_field in (field, "finished_at"), what  # a run's start after its finish
            assert errors[0]["code"] in ("invalid", "out_of_range"), what


@pytest.mark.parametrize("name", list(BATCH_ENDPOINTS))
def test_huge_numbers_anywhere_in_a_batch_row_are_stored_or_refused_never_a_5xx(name, clients):
    url, key, build, _, _ = BATCH_ENDPOINTS[name]
    client = clients("agent")
    fields = {
        "results": ["response_time_ms", "tokens", "quality_score", "user_feedback"],
        "audit": ["resource_id"],
        "operations": ["duration_ms"],
        "agent_runs": ["steps", "retry_count", "no_progress_count", "tokens", "critic_score"],
    }[name]
    for field in fields:
        for number in HUGE_NUMBERS:
            raw = _raw_batch(key, build(**{field: "__N__"})).replace(b'"__N__"', number.encode())
            response = client.generic("POST", url, raw, content_type="application/json")
            assert_handled(response, f"{name}.{field}={number}")
            assert response.status_code == 200, f"{name}.{field}={number}"


def test_floats_near_1e136_in_audit_details_are_stored_as_sent(clients, settings, tmp_path):
    from audit.models import AuditEvent

    settings.AUDIT_EXPORT_DIR = tmp_path  # this test's own chain-head file, not one other runs wrote

    event = audit_event(details={"big": 1e136, "small": -9.99e135, "list": [1e308, 5e-324], "int": 10**40})
    response = clients("agent").post("/api/v1/audit/events", {"events": [event]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    stored = AuditEvent.objects.get(event_id=event["event_id"]).details
    # jsonb keeps a number as an exact decimal: 1e136 comes back as the integer 10**136.
    assert float(stored["big"]) == 1e136 and float(stored["small"]) == -9.99e135
    assert [float(x) for x in stored["list"]] == [1e308, 5e-324] and stored["int"] == 10**40
    listed = clients("agent").get("/api/v1/audit/events")
    assert_handled(listed, "list")
    assert listed.status_code == 200
    # The hash chain seals and verifies the event as stored.
    from audit.integrity import audit_seal_pending, audit_verify_chain

    audit_seal_pending(now=timezone.now() + timedelta(minutes=5))
    assert audit_verify_chain(record=False, archives="none").ok


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


# --- query parameters -----------------------------------------------------------------------------
# Sent as they would arrive on the wire: percent-encoded bytes, some of them not UTF-8 at all (an
# unpaired surrogate in CESU-8, an overlong NUL, a code point past U+10FFFF, a bare 0xFF).
HOSTILE_QUERY_VALUES = {
    "empty": "",
    "nul": "%00",
    "nul inside": "a%00b",
    "lone surrogate": "%ED%A0%80",
    "overlong nul": "%C0%80",
    "past U+10FFFF": "%F4%90%80%80",
    "not utf-8": "%FF%FE",
    "rtl override": quote("\u202e"),
    "long": "x" * 5000,
    "huge": "99999999999999999999",
    "huge negative": "-99999999999999999999",
    "minus one": "-1",
    "zero": "0",
    "float": "1e308",
    "nan": "NaN",
    "infinity": "Infinity",
    "year 9999": quote("9999-12-31T23:59:59+00:00"),
    "year 9999 west": quote("9999-12-31T23:59:59-05:00"),
    "year 9999 date": "9999-12-31",
    "year 1": quote("0001-01-01T00:00:00+00:00"),
    "year 1 east": quote("0001-01-01T00:00:00+05:00"),
    "year 0": "0000-01-01T00:00:00Z",
    "february 30": "2026-02-30T00:00:00Z",
    "before the epoch": "1969-12-31T23:59:59Z",
    "offset past a day": quote("2026-01-01T00:00:00+99:00"),
    "sql": quote("'; DROP TABLE audit_auditevent; --"),
    "markup": quote("<script>alert(1)</script>"),
    "like wildcards": quote("%_%"),
    "regex": quote(".*"),
    "json": quote('{"a": [1]}'),
}
# Refused with a 400 by every parameter, whatever its type (every string parameter has a maximum length).
REFUSED_EVERYWHERE = ["nul", "nul inside", "lone surrogate", "overlong nul", "past U+10FFFF", "not utf-8", "long"]
# Refused with a 400 by every parameter of this schema type (format for strings).
REFUSED_BY_TYPE = {
    "integer": ["huge", "huge negative", "float", "nan", "infinity", "long"],
    "date-time": ["year 9999", "year 9999 west", "year 9999 date", "year 1", "year 1 east", "year 0", "february 30"],
}
# Values for path parameters: objects the ``query_world`` fixture creates.
PATH_VALUES = {"key": "hostile", "label": "production", "version": "1"}


@functools.cache
def _api_schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _get_operations() -> dict[str, list[dict]]:
    """Every GET path of the schema and its parameters (path and query)."""
    return {
        path: operations["get"].get("parameters", [])
        for path, operations in _api_schema()["paths"].items()
        if "get" in operations
    }


def _valid_value(schema: dict) -> str:
    """A value the parameter accepts: the baseline each hostile value replaces."""
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("format") == "date-time":
        from django.utils import timezone

        return quote((timezone.now() - timedelta(minutes=30)).isoformat())
    return {"integer": str(schema.get("minimum", 1)), "boolean": "true"}.get(schema.get("type"), "x")


def _param_kind(schema: dict) -> str:
    return schema.get("format") or schema.get("type", "string")


@pytest.fixture
def query_world(clients):
    """An admin client, and the objects the GET paths name (experiment and prompt ``hostile``, one report)."""
    from django.utils import timezone

    from reports.models import Report, ReportKind

    start = timezone.now().replace(microsecond=0) - timedelta(days=1)
    report = Report.objects.create(
        kind=ReportKind.DAILY, period="hostile", period_start=start, period_end=start + timedelta(days=1)
    )
    from experiments.snapshot import snapshot_reset

    # The label read serves this process's snapshot: rebuild it with the prompt ``clients`` wrote.
    snapshot_reset()
    # A model price (the seed table's first) and a trace of one span, for the traces endpoints.
    from accounts.models import User
    from tests.traces.trace_data import S, store_trace
    from traces.models import ModelPrice

    agent = User.objects.create_user(username="hostile-tracer", role="agent", password=None)
    trace = store_trace(agent=agent, spans=[S()])
    price = ModelPrice.objects.order_by("pk").first()
    return clients("admin"), {
        **PATH_VALUES,
        "report_id": str(report.pk),
        "price_id": str(price.pk),
        "trace_id": trace.trace_id,
    }


def _url(path: str, path_values: dict[str, str], parameters: list[dict]) -> str:
    for parameter in parameters:
        if parameter["in"] == "path":
            name = parameter["name"]
            assert name in path_values, f"{path}: add a value for the path parameter {name!r} to PATH_VALUES"
            path = path.replace("{" + name + "}", path_values[name])
    return path


def pytest_generate_tests(metafunc):
    if "get_path" in metafunc.fixturenames:
        metafunc.parametrize("get_path", sorted(_get_operations()))


def test_the_schema_lists_the_get_endpoints_with_query_parameters():
    operations = _get_operations()
    with_query = {path for path, parameters in operations.items() if any(p["in"] == "query" for p in parameters)}
    assert {"/api/v1/monitoring/summary", "/api/v1/experiments/", "/api/v1/reports/", "/api/v1/audit/events"} <= (
        with_query
    )


def test_every_query_parameter_of_every_get_endpoint_refuses_hostile_values_without_a_5xx(get_path, query_world):
    """Each parameter in turn gets each hostile value, the others keeping their valid baseline."""
    client, path_values = query_world
    parameters = _get_operations()[get_path]
    url = _url(get_path, path_values, parameters)
    query = [p for p in parameters if p["in"] == "query"]
    baseline = {p["name"]: _valid_value(p["schema"]) for p in query if p.get("required")}

    def get(params: dict[str, str], what: str):
        response = client.get(url + "?" + "&".join(f"{name}={value}" for name, value in params.items()))
        assert_handled(response, f"GET {get_path} {what}")
        return response

    # The baseline reaches the view: a hostile value below is refused by validation, not by a 403/404.
    assert get(baseline, "baseline").status_code == 200
    # A parameter the endpoint does not declare is ignored, whatever its name and value.
    get({**baseline, "a%00b": "%ED%A0%80"}, "undeclared")
    for parameter in query:
        name, kind = parameter["name"], _param_kind(parameter["schema"])
        refused = {*REFUSED_EVERYWHERE, *REFUSED_BY_TYPE.get(kind, [])}
        for label, value in HOSTILE_QUERY_VALUES.items():
            response = get({**baseline, name: value}, f"{name}={label}")
            if label in refused:
                assert response.status_code == 400, f"GET {get_path} {name}={label}: {response.status_code}"
        # Given twice, the last value counts; a hostile one is still refused.
        response = client.get(f"{url}?{name}={_valid_value(parameter['schema'])}&{name}=a%00b")
        assert_handled(response, f"GET {get_path} {name} twice")
        assert response.status_code == 400


def test_hostile_path_segments_of_the_prompt_registry_are_4xx_envelopes(clients):
    client = clients("operator")
    for url in (
        "/api/v1/prompts/" + "k" * 5000,
        "/api/v1/prompts/hostile/versions/99999999999999999999",
        "/api/v1/prompts/hostile/versions/0",
        "/api/v1/prompts/hostile/labels/a%00b/history",
        "/api/v1/prompts/hostile/labels/%ED%A0%80/history",
        "/api/v1/prompts/hostile/labels/" + "l" * 5000 + "/history",
    ):
        response = client.get(url)
        assert_handled(response, url)
        assert response.status_code in (400, 404), url
    for label in ("a%00b", "latest", "l" * 5000, "%C0%80"):
        response = client.put(f"/api/v1/prompts/hostile/labels/{label}", {"version": 1}, format="json")
        assert_handled(response, label)
        assert response.status_code in (400, 404), label
