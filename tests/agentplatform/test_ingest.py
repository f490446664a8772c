"""The shared batch-ingest path: the answer's shape, the body check, and rows stored exactly once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection, transaction

from agentplatform import ingest
from agentplatform.errors import ValidationFailed
from agentplatform.ingest import IngestResult, batch_items, clean_text, ingest_rows, timestamp_problem

TABLE = "test_ingest_rows"
COLUMNS = ("event_id", "submitter", "amount", "payload", "at", "ref", "flag")


@pytest.fixture
def table(db):
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {TABLE} (id bigserial primary key, event_id text NOT NULL, submitter int NOT NULL, "
            "amount double precision, payload jsonb, at timestamptz, ref uuid, flag boolean)"
        )
        cursor.execute(f"CREATE UNIQUE INDEX {TABLE}_key ON {TABLE} (submitter, event_id)")
    return TABLE


def rows(*ids: str, submitter: int = 1) -> list[tuple]:
    at = datetime(2026, 11, 27, 12, tzinfo=UTC)
    return [(event_id, submitter, 1.5, {"k": [1, "two"]}, at, uuid.UUID(int=7), True) for event_id in ids]


def stored_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT submitter, event_id FROM {TABLE} ORDER BY submitter, event_id")  # noqa: S608
        return cursor.fetchall()


def store(batch: list[tuple]) -> set:
    return ingest_rows(table=TABLE, columns=COLUMNS, rows=batch, conflict_key=("submitter", "event_id"))


def test_a_fresh_batch_is_stored_and_every_key_reported(table):
    assert store(rows("a", "b", "c")) == {(1, "a"), (1, "b"), (1, "c")}
    assert stored_rows() == [(1, "a"), (1, "b"), (1, "c")]


def test_a_retried_batch_stores_nothing_twice_and_reports_no_key(table, monkeypatch):
    store(rows("a", "b"))
    direct = []
    real = ingest.copy_direct

    def spy(*args, **kwargs):
        direct.append(real(*args, **kwargs))
        return direct[-1]

    monkeypatch.setattr(ingest, "copy_direct", spy)
    assert store(rows("a", "b", "c")) == {(1, "c")}  # the direct COPY was refused whole, then ON CONFLICT
    assert direct == [False]
    assert store(rows("a", "b", "c")) == set()
    assert stored_rows() == [(1, "a"), (1, "b"), (1, "c")]


def test_keys_are_unique_per_composite_key(table):
    store(rows("a"))
    assert store(rows("a", submitter=2)) == {(2, "a")}
    assert stored_rows() == [(1, "a"), (2, "a")]


def test_values_that_mean_something_in_copy_text_are_stored_as_sent(table):
    awkward = "tab\there, line\nbreak, cr\rhere, back\\slash, \\N, 'quote'"
    odd_zone = dt_timezone(timedelta(hours=1, seconds=30, microseconds=500_000))
    moment = datetime(2026, 11, 27, 12, 0, 0, tzinfo=odd_zone)
    batch = [(awkward, 1, None, {"path": "c:\\temp", "tab": "\t"}, moment, None, False)]
    assert store(batch) == {(1, awkward)}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT event_id, amount, payload, at, ref, flag FROM {TABLE}")  # noqa: S608
        event_id, amount, payload, at, ref, flag = cursor.fetchone()
    # (Django's connection hands jsonb back as its text.)
    assert (event_id, amount, json.loads(payload), at, ref, flag) == (
        awkward,
        None,
        {"path": "c:\\temp", "tab": "\t"},
        moment,
        None,
        False,
    )


def test_the_portable_path_stores_once_and_reports_the_keys(table):
    # The path SQLite takes (INSERT ... ON CONFLICT DO NOTHING RETURNING), run here on PostgreSQL.
    positions = [COLUMNS.index("submitter"), COLUMNS.index("event_id")]
    first = ingest._insert_portable(connection, TABLE, COLUMNS, rows("a", "b"), ("submitter", "event_id"), positions)
    again = ingest._insert_portable(connection, TABLE, COLUMNS, rows("b", "c"), ("submitter", "event_id"), positions)
    assert (first, again) == ({(1, "a"), (1, "b")}, {(1, "c")})


def test_a_batch_inside_a_transaction_that_rolls_back_leaves_nothing(table):
    with pytest.raises(RuntimeError), transaction.atomic():
        store(rows("a"))
        raise RuntimeError
    assert stored_rows() == []


def test_the_answer_lists_rejections_by_index_with_errors_by_field():
    result = IngestResult(accepted=2, duplicates=1)
    result.reject(5, "tokens", "out_of_range", "Too many.")
    result.reject(1, "", "invalid", "Each row is an object.")
    assert result.as_dict() == {
        "accepted": 2,
        "duplicates": 1,
        "rejected": [
            {"index": 1, "errors": {"non_field_errors": [{"code": "invalid", "message": "Each row is an object."}]}},
            {"index": 5, "errors": {"tokens": [{"code": "out_of_range", "message": "Too many."}]}},
        ],
    }


@pytest.mark.parametrize("payload", [None, [], {"rows": {}}, {"other": [1]}, {"rows": []}, {"rows": [1, 2, 3]}])
def test_a_body_that_is_not_a_batch_of_1_to_max_rows_is_refused_whole(payload):
    with pytest.raises(ValidationFailed):
        batch_items(payload, key="rows", maximum=2)


def test_a_batch_of_the_maximum_is_taken():
    assert batch_items({"rows": [1, 2]}, key="rows", maximum=2) == [1, 2]


@pytest.mark.parametrize(
    ("value", "refused"), [("plain", False), ("emoji \U0001f600", False), ("nul\x00", True), ("lone \ud8cd", True)]
)
def test_text_holding_nul_or_a_lone_surrogate_cannot_be_stored(value, refused):
    assert (clean_text(value) is not None) is refused


@pytest.mark.parametrize(
    ("moment", "refused"),
    [
        (datetime(2026, 11, 27, 11, tzinfo=UTC), False),
        (datetime(1999, 12, 31, 23, tzinfo=UTC), True),
        (datetime(2026, 11, 27, 12, 6, tzinfo=UTC), True),
        (datetime(1, 1, 1, tzinfo=dt_timezone(timedelta(hours=14, minutes=59))), True),
        (datetime(9999, 12, 31, 23, tzinfo=dt_timezone(-timedelta(hours=14, minutes=59))), True),
    ],
)
def test_timestamps_are_bounded_by_2000_and_five_minutes_ahead(moment, refused):
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert (timestamp_problem(moment, now=now) is not None) is refused


def test_each_column_is_formatted_by_its_values_types_whatever_the_mix():
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    at = datetime(2026, 11, 27, 13, 30, tzinfo=dt_timezone(timedelta(hours=1)))
    rows = [
        ("a\tb", 1, None, at, {"k": "v"}, Level.HIGH, True, 0.1),
        ("plain", None, None, at, None, 2, False, None),
        ("c\\d", 3, None, at.astimezone(UTC), [1], Level.HIGH, True, 2.5),
    ]
    assert ingest.format_rows(rows) == (
        'a\\tb\t1\t\\N\t2026-11-27T12:30:00+00:00\t{"k":"v"}\t3\tt\t0.1\n'
        "plain\t\\N\t\\N\t2026-11-27T12:30:00+00:00\t\\N\t2\tf\t\\N\n"
        "c\\\\d\t3\t\\N\t2026-11-27T12:30:00+00:00\t[1]\t3\tt\t2.5\n"
    )
    assert ingest.format_rows([]) == ""
    with pytest.raises(ValueError):  # a row of another width is a caller's bug, not a short row
        ingest.format_rows([("a", 1), ("b",)])
