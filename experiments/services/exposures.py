"""Exposure buffering: the first resolve of a user into an experiment, recorded without a write
on the hot path and without entrusting it to Redis.

``exposure_record`` remembers the (experiment, user) pairs this process has already buffered, so
a returning user costs a dict lookup; a new pair is appended to this process's exposure writer, the
audit log's per-process ``BatchWriter`` (``agentplatform/background.py``): its thread inserts what
is pending every ``EXPERIMENTS_EXPOSURE_FLUSH_SECONDS`` in one COPY, with ON CONFLICT so each
(experiment, user) is stored once with its earliest time. A failed insert is retried with backoff,
its rows kept; the queue is drained when the process exits (``atexit``, gunicorn's ``worker_exit``).

Why not a Redis list, as before: Redis holds only what can be rebuilt or may expire, and a Redis
restarted without persistence emptied the list while every process still remembered those pairs
as recorded, so the users dropped out of the analysis for good. Here the memory of a pair and its
pending row live and die together: only a process killed outright (SIGKILL) loses its last
interval's rows, and with them its memory of those users, so their next resolve records them again.
When the queue is full (the database slow or down) the resolve inserts its row itself; if that
fails too, the pair is forgotten so the user's next resolve tries again.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction

from agentplatform import compat, counters
from agentplatform.background import BatchWriter, ProcessWriter

logger = logging.getLogger(__name__)

# (experiment id, variant id, user id, first seen at)
ExposureRow = tuple[int, int, str, datetime]

# Rows of a set-aside batch named in its log line (experiment, variant, user, time).
LOGGED_ROWS_MAX = 100

# The Redis list earlier versions buffered exposures in: drained by ``exposures_drain_redis_list``.
LEGACY_BUFFER_CACHE_KEY = "experiments:exposure-buffer"
LEGACY_FLUSH_LOCK_CACHE_KEY = "experiments:exposure-flush-lock"


class _Seen:
    """A bounded, thread-safe memory of the pairs this process has already handed to the buffer."""

    def __init__(self) -> None:
        self.items: OrderedDict[tuple[int, str], None] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, item: tuple[int, str]) -> bool:
        """True if ``item`` is new (and now remembered)."""
        if item in self.items:  # the returning-user fast path: a dict lookup, no lock
            return False
        with self.lock:
            if item in self.items:
                return False
            self.items[item] = None
            if len(self.items) > settings.EXPERIMENTS_EXPOSURE_SEEN_MAX:
                self.items.popitem(last=False)
            return True

    def discard(self, item: tuple[int, str]) -> None:
        with self.lock:
            self.items.pop(item, None)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_seen = _Seen()


class ExposureWriter(BatchWriter[ExposureRow]):
    """This process's queue of exposures and the thread that inserts them."""

    name = "experiments-exposure"
    counter_prefix = "experiments_exposure"
    logger = logger

    def write_batch(self, batch: list[ExposureRow], *, retrying: bool) -> None:
        # Idempotent by construction (ON CONFLICT keeps the earliest time), so a retry needs no care.
        exposures_insert(_known_experiment_rows(batch))

    def set_aside(self, items, *, reason: str) -> None:
        # A pending exposure is rebuilt by the user's next resolve: forget the pair, so this
        # process records it again, and name the rows in the log (the first ones: a drain that
        # failed during an outage may hold thousands).
        counters.increment("experiments_exposure_not_stored", len(items))
        for experiment_id, _variant_id, user_id, _at in items:
            _seen.discard((experiment_id, user_id))
        shown = [(e, v, u, at.isoformat()) for e, v, u, at in items[:LOGGED_ROWS_MAX]]
        logger.error(
            "experiments: %d exposures not stored (%s); each user's next resolve records it again: %r%s",
            len(items),
            reason,
            shown,
            "" if len(items) <= LOGGED_ROWS_MAX else f" and {len(items) - LOGGED_ROWS_MAX} more",
        )


def _build_writer() -> ExposureWriter:
    writer = ExposureWriter(
        max_items=settings.EXPERIMENTS_EXPOSURE_BUFFER_MAX_ROWS,
        flush_interval=settings.EXPERIMENTS_EXPOSURE_FLUSH_SECONDS,
        retry_max_seconds=settings.AUDIT_BACKGROUND_RETRY_MAX_SECONDS,
        threaded=settings.EXPERIMENTS_EXPOSURE_BACKGROUND_FLUSH,
    )
    writer.batch_rows = settings.EXPERIMENTS_EXPOSURE_FLUSH_BATCH
    return writer


_writer = ProcessWriter(_build_writer, drain_seconds=lambda: settings.EXPERIMENTS_EXPOSURE_DRAIN_SECONDS)


def exposure_record(*, experiment_id: int, variant_id: int, user_id: str, at: datetime | None = None) -> None:
    """Note that ``user_id`` was resolved into the experiment (idempotent, no DB write when buffered)."""
    pair = (experiment_id, user_id)
    if not _seen.add(pair):
        return
    row = (experiment_id, variant_id, user_id, at or datetime.now(UTC))
    if _writer.get().submit([row]):
        return
    # The queue is full (the database has been slow or down for a while): this resolve writes its own.
    counters.increment("experiments_exposure_buffer_full")
    try:
        exposures_insert([row])
    except DatabaseError:
        # Forget the pair so the user's next resolve tries again; nothing else holds it.
        _seen.discard(pair)
        counters.increment("experiments_exposure_write_failures")
        logger.error("experiments: could not record an exposure", exc_info=True)


def exposures_insert(rows: list[tuple[int, int, str, datetime]]) -> None:
    """Bulk insert; a pair already stored keeps the earliest first_seen_at."""
    if not rows:
        return
    earliest: dict[tuple[int, str], tuple[int, int, str, datetime]] = {}
    for row in rows:
        pair = (row[0], row[2])
        if pair not in earliest or row[3] < earliest[pair][3]:
            earliest[pair] = row
    values = list(earliest.values())
    if connection.vendor == "postgresql":
        _upsert_via_copy(values)
        return
    placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(values))
    sql = (
        f"INSERT INTO experiments_exposure (experiment_id, variant_id, user_id, first_seen_at) VALUES {placeholders} "  # noqa: S608
        "ON CONFLICT (experiment_id, user_id) DO UPDATE SET first_seen_at = "
        "MIN(experiments_exposure.first_seen_at, excluded.first_seen_at)"
    )
    params: list = []
    for experiment_id, variant_id, user_id, at in values:
        params.extend((experiment_id, variant_id, user_id, at))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


_STAGING = "experiments_exposure_staging"


def _upsert_via_copy(values: list[tuple[int, int, str, datetime]]) -> None:
    """COPY into a session staging table, then one upsert keeping the earliest first_seen_at."""
    nested = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (experiment_id bigint, variant_id bigint, "
            "user_id varchar(255), first_seen_at timestamptz) ON COMMIT DELETE ROWS"
        )
        with cursor.cursor.copy(
            f"COPY {_STAGING} (experiment_id, variant_id, user_id, first_seen_at) FROM STDIN"
        ) as copy:
            for row in values:
                copy.write_row(row)
        cursor.execute(
            "INSERT INTO experiments_exposure (experiment_id, variant_id, user_id, first_seen_at) "  # noqa: S608
            f"SELECT experiment_id, variant_id, user_id, first_seen_at FROM {_STAGING} "
            "ON CONFLICT (experiment_id, user_id) DO UPDATE SET first_seen_at = "
            "LEAST(experiments_exposure.first_seen_at, excluded.first_seen_at) "
            "WHERE excluded.first_seen_at < experiments_exposure.first_seen_at"
        )
        if nested:
            cursor.execute(f"DELETE FROM {_STAGING}")  # noqa: S608


def exposures_flush(*, timeout: float | None = None) -> int:
    """Stores every exposure this process has buffered so far; returns how many were waiting."""
    return _writer.flush(timeout)


def exposures_writer_stop(timeout: float | None = None, **_signal_kwargs) -> int:
    """Drains and stops this process's writer (process exit); returns the exposures not stored."""
    return _writer.stop(timeout)


# Runs in every process that imported this module, forked children included (it checks the pid).
atexit.register(exposures_writer_stop)


def _redis_client():
    """The raw redis-py client behind Django's Redis cache, or None for another backend."""
    return compat.redis_client(cache)


def _decode(raw: bytes | str) -> ExposureRow:
    text = raw.decode() if isinstance(raw, bytes) else raw
    experiment_id, variant_id, timestamp, user_id = text.split("|", 3)
    return int(experiment_id), int(variant_id), user_id, datetime.fromtimestamp(float(timestamp), tz=UTC)


def exposures_drain_redis_list(*, max_batches: int = 100) -> int:
    """Moves exposures an earlier version left in its Redis list into the database (upgrades).

    Returns how many rows were read. Read, insert, then trim: an insert that fails leaves the rows
    in the list; the lock keeps two drains from trimming each other's unread rows.
    """
    client = _redis_client()
    if client is None:
        return 0
    key = cache.make_key(LEGACY_BUFFER_CACHE_KEY)
    batch_size = settings.EXPERIMENTS_EXPOSURE_FLUSH_BATCH
    moved = 0
    lock = client.lock(cache.make_key(LEGACY_FLUSH_LOCK_CACHE_KEY), timeout=120, blocking_timeout=0.5)
    if not lock.acquire():
        return 0
    try:
        for _ in range(max_batches):
            raw_rows = client.lrange(key, 0, batch_size - 1)
            if not raw_rows:
                break
            rows = []
            for raw in raw_rows:
                try:
                    rows.append(_decode(raw))
                except (ValueError, UnicodeDecodeError):
                    logger.error("experiments: dropping a malformed buffered exposure %r", raw[:200])
            exposures_insert(_known_experiment_rows(rows))
            client.ltrim(key, len(raw_rows), -1)
            moved += len(raw_rows)
    finally:
        lock.release()
    return moved


def _known_experiment_rows(rows):
    """Drop rows of experiments deleted since they were buffered (their insert would fail the FK)."""
    from experiments.models import Variant

    variant_ids = {row[1] for row in rows}
    existing = set(Variant.objects.filter(id__in=variant_ids).values_list("id", flat=True))
    return [row for row in rows if row[1] in existing]


def exposures_buffered() -> int:
    """How many exposures wait in this process's buffer (readiness info and tests)."""
    return _writer.depth()


def exposures_forget_seen() -> None:
    """Forget which pairs this process has buffered (tests)."""
    _seen.clear()


def exposures_discard_buffered() -> None:
    """Forget the exposures this process has buffered and not stored (tests)."""
    _writer.discard()
