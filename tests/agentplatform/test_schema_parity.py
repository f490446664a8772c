"""The documented schema never drifts from the code: each hand-written validator and its schema serializer
give the same accept/refuse answer on one corpus of valid and invalid bodies.

The corpus is systematic: a valid row, then each field of it replaced by every value of a pool of
awkward JSON values (wrong types, bounds, empty and long strings, NUL, timestamps out of range or
without a zone, numbers no float can hold) and left out. The serializers are built from
``agentplatform.strict_fields``; a field that accepts what its validator refuses (or the reverse)
fails here with the field and value named.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

NOW = datetime.now(UTC)
MISSING = object()


def _iso(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


POOL = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    1.0,
    1.5,
    -0.5,
    1e136,
    10**400,
    2**31,
    10**13 + 1,
    "",
    " ",
    "x",
    "1",
    "true",
    "x" * 101,
    "y" * 129,
    "z" * 256,
    "nul\x00inside",
    "tool.called",
    "Not.An.Action",
    "bad id",
    "a|b",
    "success",
    "info",
    str(uuid.UUID(int=7)),
    [],
    {},
    {"k": "v"},
    {"k": "nul\x00"},
    _iso(-timedelta(minutes=2)),
    _iso(timedelta(hours=1)),
    _iso(-timedelta(days=30)),
    _iso(-timedelta(days=400)),
    "1999-12-31T23:59:59Z",
    "2026-01-01T00:00:00",
    "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00+14:59",
    "0030-01-01T00:00:00-14:59",
    "7154-01-01T00:00:00-14:59",
    "yesterday",
]


def corpus(valid: dict) -> list[tuple[str, object]]:
    """(label, row): the valid row, each field replaced by each pool value and left out, and non-objects."""
    rows: list[tuple[str, object]] = [("valid", dict(valid)), ("a list", [valid]), ("a string", "row")]
    for field in valid:
        for value in [*POOL, MISSING]:
            row = {key: item for key, item in valid.items() if key != field}
            if value is not MISSING:
                row[field] = value
            rows.append((f"{field}={value!r:.40}", row))
    return rows


def serializer_accepts(serializer_class, row) -> bool:
    return serializer_class(data=row).is_valid()


def assert_same_answers(valid: dict, validator_accepts, serializer_class) -> None:
    cases = corpus(valid)
    answers = [(label, validator_accepts(row), serializer_accepts(serializer_class, row)) for label, row in cases]
    drifted = [(label, by_code, by_schema) for label, by_code, by_schema in answers if by_code != by_schema]
    assert drifted == [], f"validator vs schema answers differ (label, validator, schema): {drifted}"
    # The corpus holds both answers, so the comparison can fail.
    assert {by_code for _, by_code, _ in answers} == {True, False}
    assert answers[0][1] is True  # the valid row is valid


def test_resolve_validator_and_schema_agree():
    from experiments.serializers import ResolveRequestSerializer
    from experiments.validation import resolve_request_errors

    def accepts(row) -> bool:
        return isinstance(row, dict) and not resolve_request_errors(row)

    valid = {
        "user_id": "creator-1",
        "prompt_type": "welcome",
        "default_prompt": "Hello",
        "label": "production",
        "variables": {"name": "Ada", "turns": 3, "vip": True, "note": None},
    }
    assert_same_answers(valid, accepts, ResolveRequestSerializer)


@pytest.mark.parametrize(
    "variables",
    [
        {"a": {"nested": 1}},
        {"a": [1]},
        {"a": float("nan")},
        {"a": 10**400},
        {"": "empty name"},
        {"n" * 101: "long name"},
        {"a": "v" * 20_001},
        {str(i): i for i in range(101)},
    ],
    ids=["object", "list", "nan", "huge-int", "empty-name", "long-name", "long-value", "too-many"],
)
def test_resolve_variables_bounds_agree(variables):
    from experiments.serializers import ResolveRequestSerializer
    from experiments.validation import resolve_request_errors

    row = {"user_id": "u", "prompt_type": "p", "variables": variables}
    assert "variables" in resolve_request_errors(row)
    assert not serializer_accepts(ResolveRequestSerializer, row)
    fine = {"user_id": "u", "prompt_type": "p", "variables": {"a": "v" * 20_000, **{str(i): i for i in range(99)}}}
    assert not resolve_request_errors(fine) and serializer_accepts(ResolveRequestSerializer, fine)


def test_results_validator_and_schema_agree():
    from experiments.serializers import ResultRowSerializer
    from experiments.services import results

    # Whether the variant exists and is the user's is the experiment's business, not the schema's:
    # an experiment whose one variant every user is in.
    compiled = SimpleNamespace(
        id=1, in_slice=lambda user: True, variant_index=lambda user: 0, variants=[SimpleNamespace(key="control")]
    )

    semantic = {results.UNKNOWN_VARIANT, results.WRONG_VARIANT, results.OUTSIDE_EXPERIMENT}

    def accepts(row) -> bool:
        try:
            results._parse_row(row, compiled=compiled, variant_ids={"control": 1}, now=datetime.now(UTC))
        except results._Rejected as rejection:
            return rejection.code in semantic  # a well-formed row naming a variant the experiment lacks
        return True

    valid = {
        "event_id": "e-1",
        "user_id": "creator-1",
        "variant": "control",
        "occurred_at": _iso(-timedelta(minutes=2)),
        "success": True,
        "response_time_ms": 812.5,
        "tokens": 420,
        "quality_score": 0.75,
        "user_feedback": 1,
        "model": "model-1",
    }
    assert_same_answers(valid, accepts, ResultRowSerializer)


def test_reported_exposures_validator_and_schema_agree():
    from experiments.serializers import ExposureRowSerializer
    from experiments.services import reported_exposures

    def accepts(row) -> bool:
        try:
            reported_exposures.parse_exposure_row(row, now=datetime.now(UTC))
        except reported_exposures._Rejected:
            return False
        return True

    valid = {
        "experiment": "greeting-tone",
        "variant": "control",
        "user_id": "creator-1",
        "occurred_at": _iso(-timedelta(minutes=2)),
    }
    assert_same_answers(valid, accepts, ExposureRowSerializer)


def test_audit_validator_and_schema_agree(settings):
    from audit.serializers import AuditEventInSerializer, _parse_row

    def accepts(row) -> bool:
        return not _parse_row(row, datetime.now(UTC))[1]

    valid = {
        "event_id": str(uuid.uuid4()),
        "action": "tool.called",
        "resource_type": "tool",
        "resource_id": "search",
        "severity": "warning",
        "success": False,
        "details": {"query": "weather"},
        "occurred_at": _iso(-timedelta(minutes=2)),
    }
    assert_same_answers(valid, accepts, AuditEventInSerializer)
    # Fields outside the row's are refused by both.
    assert not accepts({**valid, "actor": "admin"})
    assert not serializer_accepts(AuditEventInSerializer, {**valid, "actor": "admin"})


def test_operations_validator_and_schema_agree(settings):
    from monitoring.parsing import parse_operations
    from monitoring.serializers import MetricsOperationSerializer

    def accepts(row) -> bool:
        now = datetime.now(UTC)
        oldest = now - timedelta(days=settings.MONITORING_MINUTE_RETENTION_DAYS)
        rows, _ = parse_operations([row], oldest=oldest.timestamp(), now=now.timestamp())
        return bool(rows)

    valid = {
        "operation": "rag.retrieve",
        "duration_ms": 41.7,
        "success": True,
        "occurred_at": _iso(-timedelta(minutes=2)),
        "event_id": "agent-7:000123",
    }
    assert_same_answers(valid, accepts, MetricsOperationSerializer)


def test_agent_runs_validator_and_schema_agree(settings):
    from monitoring.parsing import parse_agent_runs
    from monitoring.serializers import MetricsAgentRunSerializer

    def accepts(row) -> bool:
        now = datetime.now(UTC)
        oldest = now - timedelta(days=settings.MONITORING_HOUR_RETENTION_DAYS)
        rows, _ = parse_agent_runs([row], oldest=oldest, now=now)
        return bool(rows)

    valid = {
        "run_id": "r-81",
        "agent": "support-bot",
        "workflow": "refund",
        "steps": 7,
        "retry_count": 2,
        "no_progress_count": 1,
        "critic_score": 0.82,
        "tokens": 1200,
        "outcome": "success",
        "started_at": _iso(-timedelta(minutes=3)),
        "finished_at": _iso(-timedelta(minutes=2)),
    }
    assert_same_answers(valid, accepts, MetricsAgentRunSerializer)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("2026-11-27T12:00:00+01:00:30.5", True), ("2026-11-27T12:00:00", False), ("2026-02-30T00:00:00Z", False)],
)
def test_one_timestamp_parser_serves_validators_and_schema(value, accepted):
    from agentplatform.ingest import parse_timestamp

    assert (parse_timestamp(value) is not None) is accepted
