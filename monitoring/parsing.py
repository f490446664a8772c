"""Validation of ingested batches, row by row.

Hand-written rather than DRF serializers: a 5,000-row batch must validate in a few milliseconds
(serializers cost far more per row: bench/README.md). Every rejection names its row index, field and reason, as an
``agentplatform.ingest.RowRejection``. ``monitoring.serializers`` describes the same rows for the
OpenAPI schema; ``tests/monitoring/test_schema_parity.py`` holds the two to the same answers.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import NamedTuple

from agentplatform.ingest import INVALID, OUT_OF_RANGE, REQUIRED, RowRejection, finite, timestamp_problem
from monitoring.models import AgentRun
from monitoring.sketch import MAX_VALUE_MS

# Names: printable, no separators the store uses ("|", tabs), 1-200 characters for operations.
# \Z, not $: "$" also matches before a final newline, and an id's newline would split the store's
# newline-joined id list.
OPERATION_RE = re.compile(r"^[\x21-\x7b\x7d\x7e][\x20-\x7b\x7d\x7e]{0,199}\Z")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/@+\-]{0,99}\Z")
ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,100}\Z")
# Seconds: how far in the future an occurred_at may be (clock skew between agents and us).
MAX_FUTURE_SKEW_SECONDS = 300
MAX_COUNT = 10**9
MAX_TOKENS = 10**13
OUTCOMES = frozenset(AgentRun.Outcome.values)
_UNPARSED = object()


class OperationRow(NamedTuple):
    operation: str
    duration_ms: float
    success: bool
    occurred_at: float  # epoch seconds
    event_id: str | None


class AgentRunRow(NamedTuple):
    run_id: str
    agent: str | None  # None: the submitter's own name
    workflow: str
    steps: int
    retry_count: int
    no_progress_count: int
    critic_score: float | None
    tokens: int
    outcome: str
    started_at: datetime
    finished_at: datetime


class _Reject(Exception):
    def __init__(self, field: str, message: str, code: str = INVALID):
        self.field = field
        self.message = message
        self.code = code


def _number(item: dict, name: str, *, maximum: float, required: bool = True) -> float | None:
    value = item.get(name)
    if value is None:
        if required:
            raise _Reject(name, "This field is required.", REQUIRED)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(name, "Must be a number.")
    if not finite(value) or value < 0:
        raise _Reject(name, "Must be a finite, non-negative number.", OUT_OF_RANGE)
    if value > maximum:
        raise _Reject(name, f"Must be at most {maximum:g}.", OUT_OF_RANGE)
    return value


def _integer(item: dict, name: str, *, maximum: int) -> int:
    value = item.get(name)
    if value is None:
        raise _Reject(name, "This field is required.", REQUIRED)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject(name, "Must be an integer.")
    if value < 0 or value > maximum:
        raise _Reject(name, f"Must be between 0 and {maximum}.", OUT_OF_RANGE)
    return value


def _datetime(item: dict, name: str, now: datetime | None = None) -> datetime:
    value = item.get(name)
    if not isinstance(value, str) or len(value) > 40:
        raise _Reject(name, "Must be an ISO 8601 date-time with a time zone.", _missing_or_invalid(value))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Reject(name, "Must be an ISO 8601 date-time with a time zone.") from None
    if parsed.tzinfo is None:
        raise _Reject(name, "Must include a time zone (e.g. Z or +00:00).")
    problem = timestamp_problem(parsed, now=now) if now is not None else None
    if problem:
        raise _Reject(name, problem, OUT_OF_RANGE)
    return parsed


def _string(item: dict, name: str, pattern: re.Pattern, description: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise _Reject(name, description, _missing_or_invalid(value))
    return value


def _missing_or_invalid(value) -> str:
    return REQUIRED if value is None else INVALID


def parse_operations(
    items: list, *, oldest: float, now: float | None = None
) -> tuple[list[OperationRow], list[RowRejection]]:
    """Valid rows and per-row errors; ``oldest`` (epoch seconds) bounds occurred_at from below.

    A well-formed row takes the inlined fast path (no calls, no exceptions); anything else
    goes through ``_operation_row``, which names the field at fault.
    """
    now = time.time() if now is None else now
    newest = now + MAX_FUTURE_SKEW_SECONDS
    rows: list[OperationRow] = []
    errors: list[RowRejection] = []
    operation_ok = OPERATION_RE.match
    id_ok = ID_RE.match
    parse_time = datetime.fromisoformat
    timestamps: dict[str, object] = {}  # agents often stamp many rows alike
    append = rows.append
    for index, item in enumerate(items):
        if type(item) is dict:
            operation = item.get("operation")
            duration_ms = item.get("duration_ms")
            success = item.get("success")
            occurred = item.get("occurred_at")
            event_id = item.get("event_id")
            if (
                type(operation) is str
                and operation_ok(operation)
                and type(duration_ms) in (int, float)
                and 0 <= duration_ms <= MAX_VALUE_MS  # False for NaN, inf and negatives
                and type(success) is bool
                and type(occurred) is str
                and (event_id is None or (type(event_id) is str and id_ok(event_id)))
            ):
                timestamp = timestamps.get(occurred, _UNPARSED)
                if timestamp is _UNPARSED:
                    timestamp = None
                    if len(occurred) <= 40:
                        try:
                            parsed = parse_time(occurred)
                        except ValueError:
                            parsed = None
                        if parsed is not None and parsed.tzinfo is not None:
                            try:
                                timestamp = parsed.timestamp()
                            except OverflowError:
                                timestamp = None
                    timestamps[occurred] = timestamp
                if timestamp is not None and oldest <= timestamp <= newest:
                    append(OperationRow(operation, float(duration_ms), success, timestamp, event_id))
                    continue
        try:
            rows.append(_operation_row(item, oldest=oldest, newest=newest))
        except _Reject as reject:
            errors.append(RowRejection.one(index, reject.field, reject.code, reject.message))
    return rows, errors


def _operation_row(item, *, oldest: float, newest: float) -> OperationRow:
    """The slow path: the same rules, checked one by one so the rejection names its field."""
    if not isinstance(item, dict):
        raise _Reject("", "Each operation must be an object.")
    operation = _string(item, "operation", OPERATION_RE, "Must be 1-200 printable characters without '|'.")
    duration_ms = _number(item, "duration_ms", maximum=MAX_VALUE_MS)
    success = item.get("success")
    if not isinstance(success, bool):
        raise _Reject("success", "Must be true or false.", _missing_or_invalid(success))
    try:
        occurred_at = _datetime(item, "occurred_at").timestamp()
    except OverflowError:  # an offset that moves year 1 or 9999 out of range
        occurred_at = None
    if occurred_at is None or not oldest <= occurred_at <= newest:
        raise _Reject("occurred_at", "Must be within the minute retention and not in the future.", OUT_OF_RANGE)
    event_id = item.get("event_id")
    if event_id is not None and (not isinstance(event_id, str) or not ID_RE.match(event_id)):
        raise _Reject("event_id", "Must be 1-100 characters of A-Z a-z 0-9 . _ : -")
    return OperationRow(operation, float(duration_ms), success, occurred_at, event_id)


def parse_agent_runs(items: list, *, oldest: datetime, now: datetime) -> tuple[list[AgentRunRow], list[RowRejection]]:
    """Valid runs and per-row errors; ``oldest`` bounds finished_at from below.

    As for operations, a well-formed run takes the inlined fast path (each distinct timestamp
    string of the batch parsed once); anything else goes through ``_agent_run_row``, which names
    the field at fault.
    """
    rows: list[AgentRunRow] = []
    errors: list[RowRejection] = []
    newest = now + timedelta(seconds=MAX_FUTURE_SKEW_SECONDS)
    id_ok = ID_RE.match
    name_ok = NAME_RE.match
    timestamps: dict[str, datetime | None] = {}  # an agent's runs often share their times
    append = rows.append
    for index, item in enumerate(items):
        if type(item) is dict:
            run_id = item.get("run_id")
            agent = item.get("agent")
            workflow = item.get("workflow")
            steps = item.get("steps")
            retry_count = item.get("retry_count")
            no_progress_count = item.get("no_progress_count")
            critic_score = item.get("critic_score")
            tokens = item.get("tokens")
            outcome = item.get("outcome")
            started = item.get("started_at")
            finished = item.get("finished_at")
            if (
                type(run_id) is str
                and id_ok(run_id)
                and (agent is None or (type(agent) is str and name_ok(agent)))
                and type(workflow) is str
                and name_ok(workflow)
                and type(steps) is int
                and 0 <= steps <= MAX_COUNT
                and type(retry_count) is int
                and 0 <= retry_count <= MAX_COUNT
                and type(no_progress_count) is int
                and 0 <= no_progress_count <= MAX_COUNT
                # False for NaN, infinities and negatives (they take the slow path and its message)
                and (critic_score is None or (type(critic_score) in (int, float) and 0 <= critic_score <= 1e9))
                and type(tokens) is int
                and 0 <= tokens <= MAX_TOKENS
                and type(outcome) is str
                and outcome in OUTCOMES
                and type(started) is str
                and type(finished) is str
            ):
                started_at = timestamps.get(started, _UNPARSED)
                if started_at is _UNPARSED:
                    started_at = timestamps[started] = _timestamp_or_none(started, now)
                finished_at = timestamps.get(finished, _UNPARSED)
                if finished_at is _UNPARSED:
                    finished_at = timestamps[finished] = _timestamp_or_none(finished, now)
                if (
                    started_at is not None
                    and finished_at is not None
                    and started_at <= finished_at
                    and oldest <= finished_at <= newest
                ):
                    append(
                        AgentRunRow(
                            run_id,
                            agent,
                            workflow,
                            steps,
                            retry_count,
                            no_progress_count,
                            None if critic_score is None else float(critic_score),
                            tokens,
                            outcome,
                            started_at,
                            finished_at,
                        )
                    )
                    continue
        try:
            append(_agent_run_row(item, oldest=oldest, now=now, newest=newest))
        except _Reject as reject:
            errors.append(RowRejection.one(index, reject.field, reject.code, reject.message))
    return rows, errors


def _timestamp_or_none(value: str, now: datetime) -> datetime | None:
    """``_datetime``'s answer for a valid value, None for one it refuses (the slow path says why)."""
    try:
        return _datetime({"value": value}, "value", now)
    except _Reject:
        return None


def _agent_run_row(item, *, oldest: datetime, now: datetime, newest: datetime) -> AgentRunRow:
    """The slow path: the same rules, checked one by one so the rejection names its field."""
    if not isinstance(item, dict):
        raise _Reject("", "Each run must be an object.")
    run_id = _string(item, "run_id", ID_RE, "Must be 1-100 characters of A-Z a-z 0-9 . _ : -")
    agent = None
    if item.get("agent") is not None:
        agent = _string(item, "agent", NAME_RE, "Must be 1-100 characters (letters, digits, . _ : / @ + -).")
    workflow = _string(item, "workflow", NAME_RE, "Must be 1-100 characters (letters, digits, . _ : / @ + -).")
    steps = _integer(item, "steps", maximum=MAX_COUNT)
    retry_count = _integer(item, "retry_count", maximum=MAX_COUNT)
    no_progress_count = _integer(item, "no_progress_count", maximum=MAX_COUNT)
    critic_score = _number(item, "critic_score", maximum=1e9, required=False)
    tokens = _integer(item, "tokens", maximum=MAX_TOKENS)
    outcome = item.get("outcome")
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        raise _Reject("outcome", f"Must be one of {', '.join(sorted(OUTCOMES))}.", _missing_or_invalid(outcome))
    started_at = _datetime(item, "started_at", now)
    finished_at = _datetime(item, "finished_at", now)
    if finished_at < started_at:
        raise _Reject("finished_at", "Must not be before started_at.", OUT_OF_RANGE)
    if not oldest <= finished_at <= newest:
        raise _Reject("finished_at", "Must be within the retention and not in the future.", OUT_OF_RANGE)
    return AgentRunRow(
        run_id,
        agent,
        workflow,
        steps,
        retry_count,
        no_progress_count,
        None if critic_score is None else float(critic_score),
        tokens,
        outcome,
        started_at,
        finished_at,
    )
