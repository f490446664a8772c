"""Results ingestion: batches of outcomes agents report, validated per row and stored once.

Rows are checked in plain Python (no serializer per row: a 1,000-row batch is validated in about
a millisecond), each against the deterministic assignment — so a result whose exposure still
waits in the buffer is accepted — and stored through the platform's batch-ingest path
(``agentplatform.ingest``: an optimistic COPY, ON CONFLICT on ``event_id`` for a retried batch),
so a retried batch is counted as duplicates, never stored twice. ``ResultRowSerializer`` describes
the same rows for the OpenAPI schema; a parity test holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone

from agentplatform import counters
from agentplatform.errors import Conflict
from agentplatform.ingest import IngestResult, clean_text, finite, ingest_rows, timestamp_problem
from experiments.assignment import CompiledExperiment
from experiments.models import ExperimentStatus, Result
from experiments.selectors import experiment_get
from experiments.snapshot import compile_experiment, get_snapshot

# Rejection codes, one per reason a row is refused.
INVALID = "invalid"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_VARIANT = "unknown_variant"
WRONG_VARIANT = "wrong_variant"
OUTSIDE_EXPERIMENT = "outside_experiment"

MAX_INT4 = 2**31 - 1
COLUMNS = (
    "event_id",
    "experiment_id",
    "variant_id",
    "user_id",
    "occurred_at",
    "success",
    "response_time_ms",
    "tokens",
    "quality_score",
    "user_feedback",
    "model",
)


class _Rejected(Exception):
    def __init__(self, code: str, message: str, field: str = ""):
        self.code = code
        self.message = message
        self.field = field  # the row's field at fault ("" for the row as a whole)


def _string(row: Mapping, name: str, *, max_length: int, required: bool = True) -> str:
    value = row.get(name)
    if value is None or value == "":
        if required:
            raise _Rejected(INVALID, f"'{name}' is required.", name)
        return ""
    if not isinstance(value, str):
        raise _Rejected(INVALID, f"'{name}' must be a string.", name)
    if len(value) > max_length:
        raise _Rejected(INVALID, f"'{name}' is longer than {max_length} characters.", name)
    problem = clean_text(value)  # PostgreSQL text cannot store U+0000 nor half a surrogate pair
    if problem:
        raise _Rejected(INVALID, f"'{name}': {problem}", name)
    return value


def _number(row: Mapping, name: str, *, low: float, high: float | None = None) -> float | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Rejected(INVALID, f"'{name}' must be a number.", name)
    if not finite(value):
        raise _Rejected(OUT_OF_RANGE, f"'{name}' must be a finite number.", name)
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise _Rejected(OUT_OF_RANGE, f"'{name}' must be {bound} (got {value!r}).", name)
    return float(value)


def _occurred_at(row: Mapping, now: datetime) -> datetime:
    value = row.get("occurred_at")
    if value is None:
        return now
    if not isinstance(value, str) or len(value) > 64:
        raise _Rejected(INVALID, "'occurred_at' must be an ISO 8601 date-time string.", "occurred_at")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Rejected(
            INVALID, f"'occurred_at' is not an ISO 8601 date-time: {value[:40]!r}.", "occurred_at"
        ) from None
    if moment.tzinfo is None:
        raise _Rejected(INVALID, "'occurred_at' needs a time zone (e.g. a trailing 'Z').", "occurred_at")
    problem = timestamp_problem(moment, now=now)
    if problem:
        raise _Rejected(OUT_OF_RANGE, f"'occurred_at': {problem}", "occurred_at")
    return moment


def _parse_row(row: Any, *, compiled, variant_ids: dict[str, int], now: datetime) -> tuple:
    if not isinstance(row, Mapping):
        raise _Rejected(INVALID, "Each result is an object.")
    event_id = _string(row, "event_id", max_length=128)
    user_id = _string(row, "user_id", max_length=255)
    variant_key = _string(row, "variant", max_length=100)
    occurred_at = _occurred_at(row, now)

    success = row.get("success")
    if success is not None and not isinstance(success, bool):
        raise _Rejected(INVALID, "'success' must be true, false or null.", "success")
    response_time_ms = _number(row, "response_time_ms", low=0)
    tokens = row.get("tokens")
    if tokens is not None:
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise _Rejected(INVALID, "'tokens' must be an integer.", "tokens")
        if not 0 <= tokens <= MAX_INT4:
            raise _Rejected(OUT_OF_RANGE, f"'tokens' must be between 0 and {MAX_INT4}.", "tokens")
    quality_score = _number(row, "quality_score", low=0, high=1)
    user_feedback = row.get("user_feedback")
    if user_feedback is not None and (type(user_feedback) is not int or user_feedback not in (-1, 0, 1)):
        raise _Rejected(OUT_OF_RANGE, "'user_feedback' must be -1, 0 or 1.", "user_feedback")
    model = _string(row, "model", max_length=200, required=False)

    variant_id = variant_ids.get(variant_key)
    if variant_id is None:
        raise _Rejected(UNKNOWN_VARIANT, f"The experiment has no variant '{variant_key}'.", "variant")
    if not compiled.in_slice(user_id):
        raise _Rejected(
            OUTSIDE_EXPERIMENT, "This user is outside the experiment (not in its namespace slice).", "user_id"
        )
    assigned = compiled.variants[compiled.variant_index(user_id)]
    if assigned.key != variant_key:
        raise _Rejected(
            WRONG_VARIANT, f"This user is assigned variant '{assigned.key}', not '{variant_key}'.", "variant"
        )
    return (
        event_id,
        compiled.id,
        variant_id,
        user_id,
        occurred_at,
        success,
        response_time_ms,
        None if tokens is None else int(tokens),
        quality_score,
        None if user_feedback is None else int(user_feedback),
        model,
    )


def _parse_rows(
    rows: list, *, compiled, variant_ids: dict[str, int], now: datetime
) -> tuple[list[tuple], IngestResult]:
    """The valid rows (``COLUMNS`` order, first of each ``event_id``) and the batch's answer so far.

    A well-formed row takes the inlined fast path: no Python calls, no exceptions, each distinct
    ``occurred_at`` string parsed once and the users assigned together (``variant_indexes``);
    anything else goes through ``_parse_row``, which names the field at fault. The fast path
    accepts a subset of what ``_parse_row`` accepts, with the same values
    (``tests/experiments/test_results.py``).
    """
    moments: dict[str, datetime | None] = {}  # an agent's batch often shares its timestamps
    candidates: dict[int, tuple] = {}  # index: the row's values, if its fields passed the fast checks
    for index, row in enumerate(rows):
        if type(row) is not dict:
            continue
        event_id = row.get("event_id")
        user_id = row.get("user_id")
        variant_key = row.get("variant")
        occurred = row.get("occurred_at")
        success = row.get("success")
        response_time_ms = row.get("response_time_ms")
        tokens = row.get("tokens")
        quality_score = row.get("quality_score")
        user_feedback = row.get("user_feedback")
        model = row.get("model")
        # Only what the slow path accepts too; an id or model name that is not plain ASCII goes there.
        if not (
            type(event_id) is str
            and 0 < len(event_id) <= 128
            and event_id.isascii()
            and "\x00" not in event_id
            and type(user_id) is str
            and 0 < len(user_id) <= 255
            and user_id.isascii()
            and "\x00" not in user_id
            and type(variant_key) is str
            and variant_key in variant_ids
            and (success is None or type(success) is bool)
            and (
                response_time_ms is None
                or (type(response_time_ms) is float and 0.0 <= response_time_ms < _INFINITY)  # False for NaN
                or (type(response_time_ms) is int and 0 <= response_time_ms <= _FAST_INT_MAX)
            )
            and (tokens is None or (type(tokens) is int and 0 <= tokens <= MAX_INT4))
            and (
                quality_score is None
                or (type(quality_score) is float and 0.0 <= quality_score <= 1.0)
                or (type(quality_score) is int and 0 <= quality_score <= 1)
            )
            and (user_feedback is None or (type(user_feedback) is int and user_feedback in (-1, 0, 1)))
            and (
                model is None or (type(model) is str and len(model) <= 200 and model.isascii() and "\x00" not in model)
            )
        ):
            continue
        if occurred is None:
            occurred_at = now
        elif type(occurred) is str:
            occurred_at = moments.get(occurred, _UNPARSED)
            if occurred_at is _UNPARSED:
                occurred_at = moments[occurred] = _moment_or_none(occurred, now)
            if occurred_at is None:
                continue
        else:
            continue
        candidates[index] = (
            event_id,
            compiled.id,
            variant_ids[variant_key],
            user_id,
            occurred_at,
            success,
            None if response_time_ms is None else float(response_time_ms),
            tokens,
            None if quality_score is None else float(quality_score),
            user_feedback,
            model or "",
        )
    users = list(dict.fromkeys(values[3] for values in candidates.values()))
    assigned = dict(zip(users, compiled.variant_indexes(users), strict=True))
    variants = compiled.variants

    result = IngestResult()
    valid: dict[str, tuple] = {}
    for index, row in enumerate(rows):
        parsed = candidates.get(index)
        if parsed is not None:
            variant_index = assigned[parsed[3]]
            if variant_index is None or variants[variant_index].key != row["variant"]:
                parsed = None  # outside the experiment, or another variant: the slow path says which
        if parsed is None:
            try:
                parsed = _parse_row(row, compiled=compiled, variant_ids=variant_ids, now=now)
            except _Rejected as rejection:
                result.reject(index, rejection.field, rejection.code, rejection.message)
                continue
        if parsed[0] in valid:
            result.duplicates += 1
        else:
            valid[parsed[0]] = parsed
    return list(valid.values()), result


_UNPARSED = object()
_INFINITY = float("inf")
# Integers up to this take the fast path (any int float() can hold would do; larger ones go the slow way).
_FAST_INT_MAX = 2**53


def _moment_or_none(value: str, now: datetime) -> datetime | None:
    try:
        return _occurred_at({"occurred_at": value}, now)
    except _Rejected:
        return None


def _running_experiment(experiment_key: str) -> CompiledExperiment:
    """The running experiment's compiled form: from the process's snapshot, else from the database.

    The snapshot (``experiments.snapshot``, what resolve reads) answers a running experiment with no
    query; anything else — unknown to it, paused, or just started and not yet in it — is read
    from the database, which says 404 or 409 precisely. A batch that arrives within the snapshot's
    check interval (about a second) of a stop is still accepted, as resolve still assigns users
    for that long: its results were produced under the experiment.
    """
    compiled = get_snapshot().by_key.get(experiment_key)
    if compiled is not None and compiled.running:
        return compiled
    experiment = experiment_get(key=experiment_key)
    if experiment.status != ExperimentStatus.RUNNING:
        raise Conflict(f"Experiment '{experiment.key}' is {experiment.status}, not running.", code="not_running")
    return compile_experiment(experiment)


def results_ingest(*, experiment_key: str, rows: list) -> IngestResult:
    """Validate and store a batch (``batch_items`` checked its size); refused rows are listed with a code."""
    compiled = _running_experiment(experiment_key)
    variant_ids = {variant.key: variant.id for variant in compiled.variants}

    valid, result = _parse_rows(rows, compiled=compiled, variant_ids=variant_ids, now=timezone.now())
    inserted = results_insert(valid)
    result.accepted = inserted
    result.duplicates += len(valid) - inserted
    counters.increment("experiments_results_accepted", inserted)
    if result.rejected:
        counters.increment("experiments_results_rejected", len(result.rejected))
    return result


def results_insert(rows: list[tuple]) -> int:
    """Store rows (``COLUMNS`` order) once each by ``event_id``; returns the rows inserted."""
    stored = ingest_rows(table=Result._meta.db_table, columns=COLUMNS, rows=rows, conflict_key=("event_id",))
    return len(stored)
