"""The one batch-ingest path every batch endpoint uses: the answer's shape and the write.

**The answer.** A batch endpoint validates each row, stores the valid ones once each and answers
``IngestResult.as_dict()`` with status 200, whatever the mix of accepted, duplicate and rejected
rows; a request refused as a whole (not a batch, too few or too many rows, authentication,
permission, rate limit) is a 4xx error envelope instead and stores nothing::

    {"accepted": 998, "duplicates": 1,
     "rejected": [{"index": 3, "errors": {"tokens": [{"code": "out_of_range", "message": "..."}]}}]}

``errors`` is keyed by field (``non_field_errors`` for the row as a whole), each holding DRF's
"full details" (``code``, ``message``). ``IngestResultSerializer`` describes it for the OpenAPI
schema. ``batch_items()`` checks the request's outer shape.

**The write.** ``ingest_rows(table=, columns=, rows=, conflict_key=)`` stores rows once each by a
unique key and returns the keys it stored, so the caller can count the others as duplicates.
On PostgreSQL it first COPYs the batch straight into the table, all or nothing, in COPY's text
format (an agent's batch is almost always new); should a key already be stored (a retry after a
lost answer), the COPY is rolled back and the batch is COPYed into a session-local staging table
and moved with ``INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING RETURNING key``, which stores
the new rows and names them. A retry therefore never counts a row twice. Elsewhere (SQLite, the
embedded mode) the same call runs ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` in chunks.

    stored = ingest_rows(
        table="experiments_result",
        columns=("event_id", "experiment_id", ...),
        rows=[("e-1", 7, ...), ...],       # Python values: str, int, float, bool, None, datetime, UUID, dict, list
        conflict_key=("event_id",),        # a unique constraint or index of the table
    )
    duplicates = len(rows) - len(stored)   # stored: {"e-1", ...} (tuples for a composite key)

Callers remove repeats of a key inside one batch first (the COPY would refuse the whole batch).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connections, transaction
from rest_framework import serializers
from rest_framework.response import Response

from agentplatform.errors import ValidationFailed

# Rejection codes shared by every batch endpoint (an endpoint may add its own, e.g. wrong_variant).
REQUIRED = "required"
INVALID = "invalid"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_FIELD = "unknown_field"
NON_FIELD = "non_field_errors"  # DRF's key for an error about the row as a whole

# The earliest instant any ingested timestamp may name: nothing the platform records predates it,
# and a year-30 date would otherwise be stored, or overflow on conversion to UTC near year 1.
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
# How far ahead of the server's clock an agent's timestamp may be (clock skew).
FUTURE_SKEW = timedelta(minutes=5)


# --- the answer ---------------------------------------------------------------------------------
@dataclass(slots=True)
class RowRejection:
    index: int
    errors: dict[str, list[dict[str, str]]]

    @classmethod
    def one(cls, index: int, field_name: str, code: str, message: str) -> RowRejection:
        """A row refused for one reason (``field_name`` "" = the row as a whole)."""
        return cls(index, {field_name or NON_FIELD: [{"code": code, "message": message}]})

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "errors": self.errors}


@dataclass(slots=True)
class IngestResult:
    """What a batch endpoint did with each row: stored (accepted), already stored, or refused."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[RowRejection] = field(default_factory=list)

    def reject(self, index: int, field_name: str, code: str, message: str) -> None:
        self.rejected.append(RowRejection.one(index, field_name, code, message))

    def as_dict(self) -> dict[str, Any]:
        rejected = sorted(self.rejected, key=lambda rejection: rejection.index)
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [rejection.as_dict() for rejection in rejected],
        }


def ingest_response(result: IngestResult) -> Response:
    """The API answer of a processed batch: always 200, the outcome of each row in the body."""
    return Response(result.as_dict(), status=200)


def batch_items(payload: Any, *, key: str, maximum: int) -> list:
    """The list under ``key`` of a JSON object body, of 1 to ``maximum`` items (else a 400 envelope)."""
    items = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise ValidationFailed(
            f'The body must be {{"{key}": [...]}} with 1 to {maximum} items.', details={"field": key}
        )
    if not 1 <= len(items) <= maximum:
        raise ValidationFailed(
            f"'{key}' must hold between 1 and {maximum} items; it holds {len(items)}.",
            details={"field": key, "minimum": 1, "maximum": maximum, "given": len(items)},
        )
    return items


class RowErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="required, invalid, out_of_range, unknown_field, or the endpoint's own.")
    message = serializers.CharField()


class RowRejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the row in the batch (from 0).")
    errors = serializers.DictField(
        child=RowErrorSerializer(many=True),
        help_text="Errors by field; non_field_errors for the row as a whole.",
    )


class IngestResultSerializer(serializers.Serializer):
    """The answer of every batch endpoint (status 200 whenever the batch was processed)."""

    accepted = serializers.IntegerField(help_text="Rows stored by this request.")
    duplicates = serializers.IntegerField(help_text="Valid rows whose key was already stored (or repeated).")
    rejected = RowRejectionSerializer(many=True, help_text="Refused rows, by index; nothing of them is stored.")


# --- shared checks of row values ----------------------------------------------------------------
def clean_text(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (NUL, unpaired surrogate), or None when it can."""
    if "\x00" in value:
        return "Must not contain NUL characters."
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "Must not contain unpaired UTF-16 surrogates."
    return None


def finite(number: int | float) -> bool:
    """Whether a JSON number is finite as a float (an integer of 400 digits is not: float() overflows)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def parse_timestamp(value: Any) -> datetime | None:
    """An aware datetime from an ISO 8601 string with a time zone, or None if ``value`` is not one.

    The one parser of every batch endpoint (``datetime.fromisoformat``: offsets with seconds too).
    A well-formed string that is no date (February 30th, a 25-hour offset) is None, not an error.
    """
    if type(value) is not str or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def timestamp_problem(moment: datetime, *, now: datetime, oldest: datetime | None = None) -> str | None:
    """Why an aware ``moment`` is out of range (before ``oldest`` or 2000, or in the future), or None."""
    floor = EARLIEST_TIMESTAMP if oldest is None or oldest < EARLIEST_TIMESTAMP else oldest
    try:
        if moment < floor:
            if oldest is None or floor is EARLIEST_TIMESTAMP:
                return f"Must not be before {floor.date().isoformat()}."
            return "Is older than the retention."
        if moment > now + FUTURE_SKEW:
            return "Must not be in the future."
    except OverflowError:  # an offset that moves year 1 or 9999 out of datetime's range
        return "Is out of range."
    return None


# --- the write ----------------------------------------------------------------------------------
def ingest_rows(
    *,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict_key: Sequence[str],
    using: str = "default",
    synchronous: bool = True,
) -> set:
    """Stores ``rows`` into ``table`` once each by ``conflict_key``; returns the keys stored.

    A key is the value of the conflict column, or a tuple of them for a composite key, as the rows
    hold it. ``synchronous=False`` lets PostgreSQL acknowledge the commit before its WAL reaches the
    disk (for data that may be lost in a crash of the database server).
    """
    if not rows:
        return set()
    connection = connections[using]
    positions = [list(columns).index(name) for name in conflict_key]
    if connection.vendor != "postgresql":
        return _insert_portable(connection, table, columns, rows, conflict_key, positions)
    connection.ensure_connection()
    # Never relax the commit of a transaction someone else opened.
    synchronous = synchronous or connection.in_atomic_block
    text = format_rows(rows)
    with connection.wrap_database_errors:
        if copy_direct(connection, table=table, columns=columns, text=text, synchronous=synchronous):
            return {_key(row, positions) for row in rows}
        with transaction.atomic(using=using):
            stored = copy_staged(
                connection, table=table, columns=columns, text=text, conflict_key=conflict_key, synchronous=synchronous
            )
    return stored


def _key(row: Sequence[Any], positions: list[int]):
    if len(positions) == 1:
        return row[positions[0]]
    return tuple(row[position] for position in positions)


# COPY's text format: a tab between columns, a newline after each row, \N for NULL, and a backslash,
# tab, newline or carriage return inside a value written as a backslash escape.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COPY_NULL = "\\N"


def copy_text(value: str) -> str:
    """``value`` as a COPY text-format field (four substring scans in C for the common clean value)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _json_text(value: Any) -> str:
    return copy_text(json.dumps(value, separators=(",", ":"), allow_nan=False))


def _timestamp_text(value: datetime) -> str:
    # In UTC when the offset is not: PostgreSQL's input refuses offsets with seconds (+01:00:30.5).
    return (value.astimezone(UTC) if value.utcoffset() else value).isoformat()


_FORMATTERS = {
    str: copy_text,
    int: str,
    float: repr,  # shortest round-trip form; validators refuse NaN and infinities
    bool: lambda value: "t" if value else "f",
    datetime: _timestamp_text,
    date: date.isoformat,
    uuid.UUID: lambda value: value.hex,
    dict: _json_text,
    list: _json_text,
    Decimal: str,
}


def _other(value: Any) -> str:
    """A subclass of a known type (an IntEnum, an aware-datetime subclass) or anything with a str()."""
    for kind, formatter in _FORMATTERS.items():
        if isinstance(value, kind):
            return formatter(value)
    return copy_text(str(value))


def _format_column(values: Sequence[Any]) -> list[str] | map:
    """One column's values as COPY text fields.

    Column by column rather than row by row: a column usually holds one type, so its values go
    through one formatter with ``map`` (a loop in C) instead of a type lookup per value; and a
    column of timestamps, which a batch mostly shares (its ``now``, an agent's run times), formats
    each distinct one once.
    """
    kinds = set(map(type, values))
    null = COPY_NULL
    has_null = type(None) in kinds
    if has_null:
        kinds.discard(type(None))
    formatter = _FORMATTERS.get(kinds.pop()) if len(kinds) == 1 else None
    if formatter is None:  # mixed types, a subclass, or only NULLs
        return [null if value is None else (_FORMATTERS.get(type(value)) or _other)(value) for value in values]
    if formatter is _json_text:  # dicts and lists: not hashable, and rarely alike
        return [null if value is None else formatter(value) for value in values]
    if formatter is _timestamp_text or has_null:
        texts = {value: null if value is None else formatter(value) for value in set(values)}
        return map(texts.__getitem__, values)
    return map(formatter, values)


def format_rows(rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` in COPY's text format (the server parses each column's type from its text)."""
    if not rows:
        return ""
    columns = [_format_column(column) for column in zip(*rows, strict=True)]
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def copy_direct(connection, *, table: str, columns: Sequence[str], text: str, synchronous: bool = True) -> bool:
    """COPYs the rows in ``text`` into ``table`` in one transaction; False (nothing stored) if a key exists.

    All or nothing: a unique violation anywhere rolls the whole COPY back, so the caller's fallback
    (and a retry after a lost acknowledgement, which fails the same way) stores each row once.
    Inside a caller's transaction the COPY runs in a savepoint.
    """
    import psycopg

    try:
        with transaction.atomic(using=connection.alias), psycopg.Cursor(connection.connection) as cursor:
            if not synchronous:
                cursor.execute("SET LOCAL synchronous_commit = off")
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(text)
    except psycopg.errors.UniqueViolation:
        # Raised by psycopg's own cursor, unwrapped; atomic() has rolled the COPY back.
        return False
    return True


def _stage_name(table: str, columns: Sequence[str]) -> str:
    # One staging table per (table, column list): two callers copying different columns of one
    # table in one session must not share a staging table of the wrong shape.
    digest = hashlib.blake2s(",".join(columns).encode(), digest_size=4).hexdigest()
    return f"{table[:40]}_stage_{digest}"


def copy_staged(
    connection,
    *,
    table: str,
    columns: Sequence[str],
    text: str,
    conflict_key: Sequence[str],
    synchronous: bool = True,
    returning: bool = True,
) -> set:
    """COPYs ``text`` into a staging table and moves it with ON CONFLICT DO NOTHING; the keys stored.

    Call inside a transaction. The staging table lives as long as the database session (created on
    first use, ``ON COMMIT DELETE ROWS``, same column types as ``table``); the move takes the rows
    out with ``DELETE ... RETURNING``, so a batch inside a longer transaction never sees an earlier
    one's rows. ``IF NOT EXISTS`` every time: a creation rolled back with its transaction, or a
    pooler's ``DISCARD ALL``, would make any cache of "this session has it" wrong.
    """
    import psycopg

    stage = _stage_name(table, columns)
    column_list = ", ".join(columns)
    key_list = ", ".join(conflict_key)
    prepare = (
        # No "already exists" notice; the identifiers are the caller's constants.
        "SET LOCAL client_min_messages = warning; "  # noqa: S608
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
        f"SELECT {column_list} FROM {table} WITH NO DATA"
    )
    if not synchronous:
        prepare += "; SET LOCAL synchronous_commit = off"
    move = (
        f"WITH staged AS (DELETE FROM {stage} RETURNING *) "  # noqa: S608 (identifiers are the caller's constants)
        f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM staged "
        f"ON CONFLICT ({key_list}) DO NOTHING"
    )
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(prepare)
        with cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN") as copy:
            copy.write(text)
        if not returning:
            cursor.execute(move)
            return set()
        cursor.execute(f"{move} RETURNING {key_list}")
        if len(conflict_key) == 1:
            return {row[0] for row in cursor.fetchall()}
        return {tuple(row) for row in cursor.fetchall()}


def _portable_value(connection, value: Any) -> Any:
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, uuid.UUID):
        return value.hex  # how Django's UUIDField stores it without a native type
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _insert_portable(connection, table, columns, rows, conflict_key, positions) -> set:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING, in chunks within SQLite's parameter limit."""
    quote = connection.ops.quote_name
    column_list = ", ".join(quote(name) for name in columns)
    key_list = ", ".join(quote(name) for name in conflict_key)
    row_placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    chunk_rows = max(1, 30_000 // len(columns))
    # The stored keys come back in the database's form (a UUID as its hex): map them to the rows'.
    by_stored_form: dict = {}
    for row in rows:
        key = _key(row, positions)
        stored_form = tuple(_portable_value(connection, row[p]) for p in positions)
        by_stored_form[stored_form] = key
    stored: set = set()
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for start in range(0, len(rows), chunk_rows):
            chunk = rows[start : start + chunk_rows]
            params = [_portable_value(connection, value) for row in chunk for value in row]
            cursor.execute(
                f"INSERT INTO {quote(table)} ({column_list}) VALUES "  # noqa: S608 (the caller's identifiers)
                f"{', '.join([row_placeholder] * len(chunk))} ON CONFLICT ({key_list}) DO NOTHING RETURNING {key_list}",
                params,
            )
            for returned in cursor.fetchall():
                # SQLite's converters hand a datetime column back parsed (naive, UTC): into the stored form.
                stored_form = tuple(_portable_value(connection, value) for value in returned)
                stored.add(by_stored_form.get(stored_form, returned[0] if len(returned) == 1 else tuple(returned)))
    return stored
