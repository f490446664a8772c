"""Session settings the statistics' heavy queries share (the rollup's batches, the trace metrics)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection


def use_work_mem(cursor) -> None:
    """Lets this transaction's per-user hash aggregates and sorts stay in memory (PostgreSQL only).

    With the default 4 MB a GROUP BY over a million users spills to disk and takes twice as long;
    ``SET LOCAL`` ends with the transaction, so other queries keep the server's default.
    """
    if connection.vendor == "postgresql" and settings.EXPERIMENT_STATS_WORK_MEM:
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.EXPERIMENT_STATS_WORK_MEM])
