"""Exposures reported by clients that evaluate locally (the agent SDK): a batch, stored once each.

A client that buckets users itself from the GrowthBook payload is the only one who knows a user
was exposed, so it reports ``{experiment, variant, user_id, occurred_at}`` rows to
``POST experiments/exposures``. Each row is checked against the process's snapshot of live
experiments — the same compiled experiments resolve buckets with — so a row is refused when the
experiment is not running, or when the user is outside it or assigned another variant: the
analysis population is the same whether agents resolve remotely or locally.

The key of an exposure is (experiment, user), as for resolve: the first row of a pair is stored
through the shared batch-ingest path and any later one is a duplicate (a client's retry, another
process of the same agent, or a resolve that came first). A duplicate that is earlier than the
stored row moves ``first_seen_at`` back (``exposures_insert`` keeps the earliest time, as the
resolve path's writer does), so the order in which reports arrive does not change the analysis.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone

from agentplatform import counters
from agentplatform.ingest import (
    INVALID,
    NON_FIELD,
    OUT_OF_RANGE,
    IngestResult,
    clean_text,
    ingest_rows,
    parse_timestamp,
    timestamp_problem,
)
from experiments.models import Exposure
from experiments.services.exposures import exposures_insert
from experiments.snapshot import get_snapshot

NOT_RUNNING = "not_running"
UNKNOWN_VARIANT = "unknown_variant"
WRONG_VARIANT = "wrong_variant"
OUTSIDE_EXPERIMENT = "outside_experiment"

COLUMNS = ("experiment_id", "variant_id", "user_id", "first_seen_at")
KEY_MAX_LENGTH = 100  # experiment and variant keys (their model fields)
USER_ID_MAX_LENGTH = 255


class _Rejected(Exception):
    def __init__(self, field: str, code: str, message: str):
        self.field = field or NON_FIELD
        self.code = code
        self.message = message


def _text(row: Mapping, name: str, *, max_length: int) -> str:
    value = row.get(name)
    if value is None or value == "":
        raise _Rejected(name, INVALID, f"'{name}' is required.")
    if not isinstance(value, str):
        raise _Rejected(name, INVALID, f"'{name}' must be a string.")
    if len(value) > max_length:
        raise _Rejected(name, INVALID, f"'{name}' is longer than {max_length} characters.")
    problem = clean_text(value)
    if problem:
        raise _Rejected(name, INVALID, f"'{name}': {problem}")
    return value


def parse_exposure_row(row: Any, *, now: datetime) -> tuple[str, str, str, datetime]:
    """(experiment key, variant key, user id, occurred at) of a well-formed row; ``_Rejected`` otherwise."""
    if not isinstance(row, Mapping):
        raise _Rejected(NON_FIELD, INVALID, "Each exposure is an object.")
    experiment_key = _text(row, "experiment", max_length=KEY_MAX_LENGTH)
    variant_key = _text(row, "variant", max_length=KEY_MAX_LENGTH)
    user_id = _text(row, "user_id", max_length=USER_ID_MAX_LENGTH)
    occurred = row.get("occurred_at")
    if occurred is None:
        moment = now
    else:
        moment = parse_timestamp(occurred)
        if moment is None:
            raise _Rejected("occurred_at", INVALID, "'occurred_at' must be an ISO 8601 date-time with a time zone.")
        problem = timestamp_problem(moment, now=now)
        if problem:
            raise _Rejected("occurred_at", OUT_OF_RANGE, f"'occurred_at': {problem}")
    return experiment_key, variant_key, user_id, moment


def _assigned_row(parsed: tuple[str, str, str, datetime], by_key: Mapping) -> tuple[int, int, str, datetime]:
    """The row to store, after checking the user's assignment in the live experiment."""
    experiment_key, variant_key, user_id, moment = parsed
    compiled = by_key.get(experiment_key)
    if compiled is None or not compiled.running:
        raise _Rejected("experiment", NOT_RUNNING, f"No running experiment '{experiment_key}'.")
    variant_ids = {variant.key: variant.id for variant in compiled.variants}
    if variant_key not in variant_ids:
        raise _Rejected("variant", UNKNOWN_VARIANT, f"The experiment has no variant '{variant_key}'.")
    if not compiled.in_slice(user_id):
        raise _Rejected(
            "user_id", OUTSIDE_EXPERIMENT, "This user is outside the experiment (not in its namespace slice)."
        )
    assigned = compiled.variants[compiled.variant_index(user_id)]
    if assigned.key != variant_key:
        raise _Rejected(
            "variant", WRONG_VARIANT, f"This user is assigned variant '{assigned.key}', not '{variant_key}'."
        )
    return compiled.id, variant_ids[variant_key], user_id, moment


def exposures_ingest(*, rows: list) -> IngestResult:
    """Validate and store a batch (``batch_items`` checked its size): first exposure per (experiment, user)."""
    now = timezone.now()
    by_key = get_snapshot().by_key
    result = IngestResult()
    earliest: dict[tuple[int, str], tuple[int, int, str, datetime]] = {}
    for index, row in enumerate(rows):
        try:
            stored_row = _assigned_row(parse_exposure_row(row, now=now), by_key)
        except _Rejected as rejection:
            result.reject(index, rejection.field, rejection.code, rejection.message)
            continue
        pair = (stored_row[0], stored_row[2])
        kept = earliest.get(pair)
        if kept is None:
            earliest[pair] = stored_row
            continue
        result.duplicates += 1  # the same pair twice in one batch: one exposure, the earlier time
        if stored_row[3] < kept[3]:
            earliest[pair] = stored_row
    valid = list(earliest.values())
    stored = ingest_rows(
        table=Exposure._meta.db_table, columns=COLUMNS, rows=valid, conflict_key=("experiment_id", "user_id")
    )
    already = [row for row in valid if (row[0], row[2]) not in stored]
    if already:
        exposures_insert(already)  # keeps the earliest first_seen_at of each stored pair
    result.accepted = len(stored)
    result.duplicates += len(already)
    counters.increment("experiments_reported_exposures_accepted", len(stored))
    if result.rejected:
        counters.increment("experiments_reported_exposures_rejected", len(result.rejected))
    return result
