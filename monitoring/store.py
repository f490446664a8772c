"""The shared store of open (not yet rolled-up) minutes and of cumulative counters.

Data model, identical in both backends: named hashes of integer counters.

- ``h|<minute epoch, 10 digits>|<operation>``: one operation's open minute. Fields ``n`` (count),
  ``e`` (errors), ``s`` (sum of durations, microseconds) and one field per DDSketch bucket index.
- ``c|<name>``: cumulative counters for /metrics (request counts and latency buckets, platform
  counters); never reset, so Prometheus sees monotonic counters whichever process answers.

``RedisStore`` increments with HINCRBY inside MULTI pipelines (atomic, so any number of processes
and hosts add into the same counts). ``DatabaseStore`` (the embedded mode, no Redis) increments
``CounterCell`` rows with ``INSERT ... ON CONFLICT DO UPDATE SET value = value + excluded.value``,
which SQLite (WAL) and PostgreSQL both run atomically, so web and worker processes share it too.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from agentplatform.errors import DependencyUnavailable
from monitoring.models import CounterCell, SeenEvent

REDIS_PREFIX = "mon:"
INDEX = REDIS_PREFIX + "index"
CLAIMS = REDIS_PREFIX + "claims"
# Seconds an open-minute hash may live in Redis if the rollup never runs (then it is lost, not
# left to fill the memory).
OPEN_MINUTE_TTL_SECONDS = 3 * 24 * 3600
# Rows per statement in the embedded store (well under SQLite's bound-parameter limit).
_DB_CHUNK = 300

Increments = Mapping[str, Mapping[str, int]]


def minute_key(minute_epoch: int, operation: str) -> str:
    return f"h|{minute_epoch:010d}|{operation}"


def parse_minute_key(key: str) -> tuple[int, str]:
    _, minute, operation = key.split("|", 2)
    return int(minute), operation


@dataclass(frozen=True)
class OpenMinute:
    operation: str
    minute_epoch: int
    fields: dict[str, int]


class EventRow(NamedTuple):
    """One ingested observation: counted only if its event id (when given) is new."""

    event_id: str
    key: str
    bucket: int
    error: bool
    duration_us: int


def _merge_into(target: dict[str, dict[str, int]], key: str, fields: Mapping[str, int]) -> None:
    bucket = target.setdefault(key, {})
    for field, amount in fields.items():
        bucket[field] = bucket.get(field, 0) + amount


def event_increments(rows: Iterable[EventRow]) -> dict[str, dict[str, int]]:
    increments: dict[str, dict[str, int]] = {}
    for row in rows:
        fields = increments.get(row.key)
        if fields is None:
            fields = increments[row.key] = {"n": 0, "e": 0, "s": 0}
        fields["n"] += 1
        fields["e"] += row.error
        fields["s"] += row.duration_us
        bucket = str(row.bucket)
        fields[bucket] = fields.get(bucket, 0) + 1
    return increments


# Dedupe event ids in one atomic script: ids live in one Redis set per time slot (slot length =
# the dedupe window); a batch checks the current and the previous slot with SMISMEMBER and adds
# its new ids with SADD, so the cost is a handful of commands per batch, not per row. The counts
# themselves never wait in Redis (monitoring/operations.py).
_SEE_IDS_LUA = """
local current = KEYS[1]
local previous = KEYS[2]
local window = tonumber(ARGV[1])
local CHUNK = 1000
local ids = {}
for k = 2, #ARGV do ids[#ids + 1] = ARGV[k] end
local fresh, seen, new_ids = {}, {}, {}
for start = 1, #ids, CHUNK do
  local stop = math.min(start + CHUNK - 1, #ids)
  local in_current = redis.call('SMISMEMBER', current, unpack(ids, start, stop))
  local in_previous = redis.call('SMISMEMBER', previous, unpack(ids, start, stop))
  for j = start, stop do
    local id = ids[j]
    if in_current[j - start + 1] == 1 or in_previous[j - start + 1] == 1 or seen[id] then
      fresh[j] = 0
    else
      fresh[j] = 1
      seen[id] = true  -- a repeat later in this batch is a duplicate too
      new_ids[#new_ids + 1] = id
    end
  end
end
for start = 1, #new_ids, CHUNK do
  redis.call('SADD', current, unpack(new_ids, start, math.min(start + CHUNK - 1, #new_ids)))
end
if #new_ids > 0 then redis.call('EXPIRE', current, 2 * window) end
return fresh
"""


# Moves closed minutes out of the index into claim hashes, atomically: writers that flush after the
# claim create a fresh hash (and re-index it), so nothing is lost or taken twice.
_CLAIM_LUA = """
local prefix = ARGV[1]
local cutoff = ARGV[2]
local run = ARGV[3]
local limit = tonumber(ARGV[4])
local members = redis.call('ZRANGEBYSCORE', prefix .. 'index', '-inf', cutoff, 'LIMIT', 0, limit)
local claimed = 0
for i, member in ipairs(members) do
  redis.call('ZREM', prefix .. 'index', member)
  if redis.call('EXISTS', prefix .. member) == 1 then
    local claim = run .. ':' .. i
    local target = prefix .. 'claim:' .. claim
    redis.call('RENAME', prefix .. member, target)
    redis.call('PERSIST', target)
    redis.call('HSET', target, '_key', member)
    redis.call('SADD', prefix .. 'claims', claim)
    claimed = claimed + 1
  end
end
return claimed
"""


@contextmanager
def _redis_unavailable_as_dependency_error():
    try:
        yield
    except redis.RedisError as exc:
        raise DependencyUnavailable("The metrics store (Redis) is unavailable; retry later.", retry_after=5) from exc


class RedisStore:
    """Open minutes in Redis. Connection failures surface as ``DependencyUnavailable`` (503)."""

    name = "redis"

    def __init__(self, client: redis.Redis):
        self.client = client
        self._see_ids = client.register_script(_SEE_IDS_LUA)
        self._claim = client.register_script(_CLAIM_LUA)

    @_redis_unavailable_as_dependency_error()
    def add(self, increments: Increments) -> None:
        if not increments:
            return
        pipe = self.client.pipeline(transaction=True)
        for key, fields in increments.items():
            hash_key = REDIS_PREFIX + key
            for field, amount in fields.items():
                if amount:
                    pipe.hincrby(hash_key, field, amount)
            if key.startswith("h|"):
                pipe.zadd(INDEX, {key: parse_minute_key(key)[0]})
                pipe.expire(hash_key, OPEN_MINUTE_TTL_SECONDS)
        pipe.execute()

    @_redis_unavailable_as_dependency_error()
    def see_event_ids(self, ids: list[str], *, id_ttl_seconds: int) -> list[bool]:
        """For each id, True if it was not seen in the last ``id_ttl_seconds`` (at most twice that)."""
        if not ids:
            return []
        slot = int(time.time() // id_ttl_seconds)
        keys = [f"{REDIS_PREFIX}eids:{slot}", f"{REDIS_PREFIX}eids:{slot - 1}"]
        return [bool(flag) for flag in self._see_ids(keys=keys, args=[id_ttl_seconds, *ids])]

    @_redis_unavailable_as_dependency_error()
    def unsee_event_ids(self, ids: list[str], *, id_ttl_seconds: int) -> None:
        """Forget ``ids`` (their counts were refused after ``see_event_ids``): a retry is counted."""
        if not ids:
            return
        slot = int(time.time() // id_ttl_seconds)
        pipe = self.client.pipeline(transaction=False)
        for key in (f"{REDIS_PREFIX}eids:{slot}", f"{REDIS_PREFIX}eids:{slot - 1}"):
            pipe.srem(key, *ids)
        pipe.execute()

    @_redis_unavailable_as_dependency_error()
    def read(self, key: str) -> dict[str, int]:
        return {field.decode(): int(value) for field, value in self.client.hgetall(REDIS_PREFIX + key).items()}

    @_redis_unavailable_as_dependency_error()
    def open_minutes(self, *, since_epoch: int, until_epoch: int, operation: str | None = None) -> list[OpenMinute]:
        members = [m.decode() for m in self.client.zrangebyscore(INDEX, since_epoch, f"({until_epoch}")]
        if operation is not None:
            members = [m for m in members if parse_minute_key(m)[1] == operation]
        if not members:
            return []
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            pipe.hgetall(REDIS_PREFIX + member)
        result = []
        for member, raw in zip(members, pipe.execute(), strict=True):
            if raw:
                minute, op = parse_minute_key(member)
                result.append(OpenMinute(op, minute, {f.decode(): int(v) for f, v in raw.items()}))
        return result

    def claim_closed(self, *, cutoff_epoch: int, limit: int = 5000) -> int:
        return int(self._claim(args=[REDIS_PREFIX, cutoff_epoch, uuid.uuid4().hex, limit]))

    def claimed(self) -> list[tuple[str, OpenMinute]]:
        claims = sorted(c.decode() for c in self.client.smembers(CLAIMS))
        if not claims:
            return []
        pipe = self.client.pipeline(transaction=False)
        for claim in claims:
            pipe.hgetall(f"{REDIS_PREFIX}claim:{claim}")
        result = []
        for claim, raw in zip(claims, pipe.execute(), strict=True):
            fields = {f.decode(): v.decode() for f, v in raw.items()}
            key = fields.pop("_key", None)
            if key is None:  # already deleted by a run that crashed before SREM
                self.client.srem(CLAIMS, claim)
                continue
            minute, operation = parse_minute_key(key)
            result.append((claim, OpenMinute(operation, minute, {f: int(v) for f, v in fields.items()})))
        return result

    def release_claims(self, claims: list[str]) -> None:
        if not claims:
            return
        pipe = self.client.pipeline(transaction=True)
        for claim in claims:
            pipe.delete(f"{REDIS_PREFIX}claim:{claim}")
        pipe.srem(CLAIMS, *claims)
        pipe.execute()


class DatabaseStore:
    """The embedded store; rollup reads and deletes its rows in the same transaction."""

    name = "database"

    def _upsert(self, rows: list[tuple[str, str, int]]) -> None:
        table = CounterCell._meta.db_table
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            for start in range(0, len(rows), _DB_CHUNK):
                chunk = rows[start : start + _DB_CHUNK]
                placeholders = ", ".join(["(%s, %s, %s)"] * len(chunk))
                params = [value for row in chunk for value in row]
                cursor.execute(
                    f"INSERT INTO {table} ({quote('key')}, {quote('field')}, {quote('value')}) "  # noqa: S608
                    f"VALUES {placeholders} ON CONFLICT ({quote('key')}, {quote('field')}) "
                    f"DO UPDATE SET {quote('value')} = {table}.{quote('value')} + excluded.{quote('value')}",
                    params,
                )

    def add(self, increments: Increments) -> None:
        rows = [
            (key, field, amount) for key, fields in increments.items() for field, amount in fields.items() if amount
        ]
        if rows:
            with transaction.atomic():
                self._upsert(rows)

    def see_event_ids(self, ids: list[str], *, id_ttl_seconds: int) -> list[bool]:
        """For each id, True if it was not seen before (``metrics_prune`` forgets ids past the window)."""
        if not ids:
            return []
        now = datetime.now(UTC)
        fresh_ids: set[str] = set()
        table = SeenEvent._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            for start in range(0, len(ids), _DB_CHUNK):
                chunk = list(dict.fromkeys(ids[start : start + _DB_CHUNK]))
                placeholders = ", ".join(["(%s, %s)"] * len(chunk))
                params = [value for event_id in chunk for value in (event_id, now)]
                cursor.execute(
                    f"INSERT INTO {table} (event_id, seen_at) VALUES {placeholders} "  # noqa: S608
                    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                    params,
                )
                fresh_ids.update(r[0] for r in cursor.fetchall())
        flags = []
        for event_id in ids:
            flags.append(event_id in fresh_ids)
            fresh_ids.discard(event_id)  # a repeat inside one batch counts once
        return flags

    def unsee_event_ids(self, ids: list[str], *, id_ttl_seconds: int) -> None:
        """Forget ``ids`` (their counts were refused after ``see_event_ids``): a retry is counted."""
        if ids:
            SeenEvent.objects.filter(event_id__in=ids).delete()

    def read(self, key: str) -> dict[str, int]:
        return dict(CounterCell.objects.filter(key=key).values_list("field", "value"))

    def _minute_filter(self, since_epoch: int, until_epoch: int) -> Q:
        return Q(key__gte=f"h|{since_epoch:010d}|", key__lt=f"h|{until_epoch:010d}|")

    def open_minutes(self, *, since_epoch: int, until_epoch: int, operation: str | None = None) -> list[OpenMinute]:
        cells = CounterCell.objects.filter(self._minute_filter(since_epoch, until_epoch))
        if operation is not None:
            cells = cells.filter(key__endswith=f"|{operation}")
        grouped: dict[str, dict[str, int]] = {}
        for key, field, value in cells.values_list("key", "field", "value"):
            grouped.setdefault(key, {})[field] = value
        result = []
        for key, fields in grouped.items():
            minute, op = parse_minute_key(key)
            if operation is None or op == operation:
                result.append(OpenMinute(op, minute, fields))
        return result

    def take_closed(self, *, cutoff_epoch: int) -> list[OpenMinute]:
        """Reads and deletes closed minutes; call inside the transaction that stores them."""
        cells = CounterCell.objects.select_for_update().filter(self._minute_filter(0, cutoff_epoch + 1))
        rows = list(cells.values_list("id", "key", "field", "value"))
        grouped: dict[str, dict[str, int]] = {}
        for _, key, field, value in rows:
            grouped.setdefault(key, {})[field] = value
        CounterCell.objects.filter(id__in=[row[0] for row in rows]).delete()
        return [OpenMinute(*reversed(parse_minute_key(key)), fields) for key, fields in grouped.items()]


@functools.cache
def _redis_client(url: str) -> redis.Redis:
    timeout = settings.REDIS_SOCKET_TIMEOUT
    return redis.Redis.from_url(url, socket_timeout=max(timeout, 2.0), socket_connect_timeout=timeout)


def get_store() -> RedisStore | DatabaseStore:
    if settings.MONITORING_STORE == "redis":
        return _redis_store(settings.REDIS_URL)
    return DatabaseStore()


@functools.cache
def _redis_store(url: str) -> RedisStore:
    return RedisStore(_redis_client(url))


def event_id_cutoff() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=settings.MONITORING_EVENT_ID_TTL_SECONDS)
