"""What each index and key of ``experiments_result`` costs a 1,000-row COPY (docs/experiments.md).

Builds copies of the results table in the database named by ``DATABASE_URL`` (tables ``rb_*``,
dropped and recreated each run), each with a different set of indexes and integrity checks, and
COPYs the same kind of 1,000-row batches into them in shuffled rounds, one transaction per batch
(a deferred key is checked at the commit, inside the timing). Prints the median milliseconds per
batch after a warm-up. Not part of ``make bench``: run it by hand when the table's shape changes::

    DATABASE_URL=postgres://root@127.0.0.1:5432/scratch .venv/bin/python bench/result_table_shapes.py
"""

from __future__ import annotations

import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime

import psycopg

COLUMNS = (
    "event_id varchar(128) NOT NULL, user_id varchar(255) NOT NULL, occurred_at timestamptz NOT NULL, "
    "success boolean, response_time_ms float8, tokens int, quality_score float8, user_feedback smallint, "
    "model varchar(200) NOT NULL, recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(), "
    "experiment_id bigint NOT NULL, variant_id bigint NOT NULL"
)
NAMES = (
    "event_id, user_id, occurred_at, success, response_time_ms, tokens, quality_score, user_feedback, model, "
    "experiment_id, variant_id"
)
COVERING = (
    'CREATE INDEX ON {t} (experiment_id, variant_id, user_id COLLATE "C") '
    "INCLUDE (success, quality_score, user_feedback, response_time_ms, tokens)"
)
KEY = (
    "ALTER TABLE {t} ADD FOREIGN KEY (experiment_id, variant_id) REFERENCES rb_variant (experiment_id, id) "
    "DEFERRABLE INITIALLY DEFERRED"
)
TRIGGER = """
CREATE FUNCTION {t}_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE wanted bigint; found bigint;
BEGIN
    SELECT count(*) INTO wanted FROM (SELECT DISTINCT experiment_id, variant_id FROM new_rows) AS pairs;
    SELECT count(*) INTO found FROM (SELECT 1 FROM rb_variant AS v
        WHERE (v.experiment_id, v.id) IN (SELECT experiment_id, variant_id FROM new_rows) FOR KEY SHARE) AS locked;
    IF found <> wanted THEN RAISE EXCEPTION 'bad variant' USING ERRCODE = 'foreign_key_violation'; END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER {t}_check AFTER INSERT ON {t} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {t}_check();
"""
# name: (primary key?, statements after CREATE TABLE)
SHAPES = {
    "bare (baseline)": (False, []),
    "0007 (six indexes, one key)": (
        True,
        [
            "CREATE INDEX ON {t} (variant_id)",
            "CREATE INDEX ON {t} (experiment_id, occurred_at)",
            "CREATE INDEX ON {t} (experiment_id, recorded_at)",
            COVERING,
            KEY,
        ],
    ),
    "0008 (BRIN times, statement check)": (
        True,
        [
            "CREATE INDEX ON {t} USING brin (occurred_at) WITH (autosummarize = on)",
            "CREATE INDEX ON {t} USING brin (recorded_at) WITH (autosummarize = on)",
            COVERING,
            TRIGGER,
        ],
    ),
    "0008 without any check": (
        True,
        [
            "CREATE INDEX ON {t} USING brin (occurred_at) WITH (autosummarize = on)",
            "CREATE INDEX ON {t} USING brin (recorded_at) WITH (autosummarize = on)",
            COVERING,
        ],
    ),
}


def main(rounds: int = 60, warm_up: int = 10) -> None:
    dsn = os.environ.get("DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "DROP TABLE IF EXISTS rb_variant CASCADE; "
            "CREATE TABLE rb_variant "
            "(id bigserial PRIMARY KEY, experiment_id bigint NOT NULL, UNIQUE (experiment_id, id)); "
            "INSERT INTO rb_variant (experiment_id) VALUES (1), (1)"
        )
        tables = {}
        for number, (name, (primary_key, statements)) in enumerate(SHAPES.items()):
            table = tables[name] = f"rb_shape_{number}"
            cursor.execute(f"DROP TABLE IF EXISTS {table} CASCADE; DROP FUNCTION IF EXISTS {table}_check()")
            key = "id bigserial PRIMARY KEY, " if primary_key else ""
            cursor.execute(f"CREATE TABLE {table} ({key}{COLUMNS}, UNIQUE (event_id))")
            for statement in statements:
                cursor.execute(statement.format(t=table))
        now = datetime.now(UTC)
        timings: dict[str, list[float]] = {name: [] for name in SHAPES}
        for _ in range(rounds):
            for name in random.sample(list(SHAPES), len(SHAPES)):
                rows = [
                    (
                        uuid.uuid4().hex,
                        f"u-{random.randrange(200_000)}",
                        now,
                        True,
                        812.0,
                        430,
                        0.9,
                        1,
                        "m",
                        1,
                        random.choice((1, 2)),
                    )
                    for _ in range(1000)
                ]
                started = time.perf_counter()
                with connection.transaction(), cursor.copy(f"COPY {tables[name]} ({NAMES}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                timings[name].append(time.perf_counter() - started)
        for name, values in timings.items():
            print(f"{name:40s} {statistics.median(values[warm_up:]) * 1000:6.2f} ms per 1,000 rows")
        for table in tables.values():
            cursor.execute(f"DROP TABLE IF EXISTS {table} CASCADE; DROP FUNCTION IF EXISTS {table}_check()")
        cursor.execute("DROP TABLE IF EXISTS rb_variant CASCADE")


if __name__ == "__main__":
    main()
