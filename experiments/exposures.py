"""Exposure buffering: the first resolve of a user into an experiment, recorded without a write
on the hot path.

``exposure_record`` remembers the (experiment, user) pairs this process has already buffered, so
a returning user costs a dict lookup; a new pair is pushed onto a Redis list (one RPUSH), and
``exposures_flush`` (a beat task every few seconds, and on demand) moves the list into the
database in bulk under a lock, with ON CONFLICT so each (experiment, user) is stored once with
its earliest time. When the shared cache is not Redis (``make run``) or Redis is down, the row is
inserted directly: slower, never lost.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction

from agentplatform import compat, counters

logger = logging.getLogger(__name__)

BUFFER_CACHE_KEY = "experiments:exposure-buffer"
FLUSH_LOCK_CACHE_KEY = "experiments:exposure-flush-lock"


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


def _redis_client():
    """The raw redis-py client behind Django's Redis cache, or None for another backend."""
    return compat.redis_client(cache)


def _encode(experiment_id: int, variant_id: int, user_id: str, at: datetime) -> str:
    # user_id last: it may contain the separator.
    return f"{experiment_id}|{variant_id}|{at.timestamp():.6f}|{user_id}"


def _decode(raw: bytes | str) -> tuple[int, int, str, datetime]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    experiment_id, variant_id, timestamp, user_id = text.split("|", 3)
    return int(experiment_id), int(variant_id), user_id, datetime.fromtimestamp(float(timestamp), tz=UTC)


def exposure_record(*, experiment_id: int, variant_id: int, user_id: str, at: datetime | None = None) -> None:
    """Note that ``user_id`` was resolved into the experiment (idempotent, no DB write when buffered)."""
    pair = (experiment_id, user_id)
    if not _seen.add(pair):
        return
    at = at or datetime.now(UTC)
    client = None
    try:
        client = _redis_client()
        if client is not None:
            client.rpush(cache.make_key(BUFFER_CACHE_KEY), _encode(experiment_id, variant_id, user_id, at))
            return
    except Exception:
        logger.warning("experiments: exposure buffer unavailable, inserting directly", exc_info=True)
        counters.increment("experiments_exposure_buffer_fallbacks")
    try:
        exposures_insert([(experiment_id, variant_id, user_id, at)])
    except DatabaseError:
        # Forget the pair so the user's next resolve tries again; nothing else can hold it.
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


def exposures_flush(*, max_batches: int = 100) -> int:
    """Move buffered exposures into the database; returns how many rows were read from the buffer."""
    client = _redis_client()
    if client is None:
        return 0
    batch_size = settings.EXPERIMENTS_EXPOSURE_FLUSH_BATCH
    key = cache.make_key(BUFFER_CACHE_KEY)
    moved = 0
    # Read, insert, then trim: an insert that fails leaves the rows in the list for the next run;
    # the lock keeps two flushers from trimming each other's unread rows.
    lock = client.lock(cache.make_key(FLUSH_LOCK_CACHE_KEY), timeout=120, blocking_timeout=0.5)
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
    """How many exposures wait in the buffer (readiness info and tests)."""
    client = _redis_client()
    if client is None:
        return 0
    return client.llen(cache.make_key(BUFFER_CACHE_KEY))


def exposures_forget_seen() -> None:
    """Forget which pairs this process has buffered (tests)."""
    _seen.clear()
