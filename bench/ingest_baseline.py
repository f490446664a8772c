"""The baseline of every batch endpoint's figure: a plain COPY of the same rows.

Each batch endpoint is measured against PostgreSQL's COPY of the same rows into a bare table with
the same columns and one unique index on ``event_id`` (the endpoint's idempotency key; agent runs:
``run_id``) and nothing
else: no primary key, no other index, no constraint. The rows go in batches the size of the
endpoint's, each COPY its own transaction (what an endpoint's batch costs at best), through
psycopg's ``write_row`` from this process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence


def baseline_note(table: str, columns: Sequence[tuple[str, str]], batch: int, *, key: str = "event_id") -> str:
    names = ", ".join(name for name, _ in columns)
    return f"baseline: COPY into {table}({names}) with only a unique index on {key}, {batch:,}-row transactions"


def copy_rows_per_second(
    bench, *, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[tuple], batch: int, key: str = "event_id"
) -> float:
    """Rows/s of COPYing ``rows`` into a fresh ``table`` of ``columns`` (name, SQL type), ``batch`` per transaction."""
    import psycopg

    names = ", ".join(name for name, _ in columns)
    with psycopg.connect(bench.psycopg_dsn, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.execute(f"CREATE TABLE {table} ({', '.join(f'{name} {kind}' for name, kind in columns)})")
        connection.execute(f"CREATE UNIQUE INDEX {table}_key ON {table} ({key})")
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            with (
                connection.transaction(),
                connection.cursor() as cursor,
                cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
            ):
                for row in rows[start : start + batch]:
                    copy.write_row(row)
        elapsed = time.perf_counter() - started
        connection.execute(f"DROP TABLE {table}")
    return len(rows) / elapsed
