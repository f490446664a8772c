"""The shared cache as the accounts app uses it: a speed-up in front of the database, never a source of truth.

Every read that misses (or fails because Redis is down) falls through to the database, so a
cache outage costs queries, not correctness; these wrappers turn a Redis error into a miss and
count it for /metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache import cache
from redis.exceptions import RedisError

from agentplatform import counters

logger = logging.getLogger(__name__)

_MISSING = object()


def _failed(operation: str, exc: Exception) -> None:
    counters.increment("accounts_cache_errors", operation=operation)
    logger.warning("accounts cache %s failed (%s); using the database", operation, exc.__class__.__name__)


def cache_get(key: str, default: Any = None) -> Any:
    try:
        return cache.get(key, default)
    except RedisError as exc:
        _failed("get", exc)
        return default


def cache_get_many(*keys: str) -> dict[str, Any]:
    """The values of the ``keys`` present (one round trip); {} when the cache fails."""
    try:
        return cache.get_many(keys)
    except RedisError as exc:
        _failed("get_many", exc)
        return {}


def cache_set(key: str, value: Any, timeout: float) -> None:
    try:
        cache.set(key, value, timeout)
    except RedisError as exc:
        _failed("set", exc)


def cache_add(key: str, value: Any, timeout: float) -> bool:
    """Stores ``value`` only if ``key`` is absent; True when it was stored."""
    try:
        return cache.add(key, value, timeout)
    except RedisError as exc:
        _failed("add", exc)
        return False


def cache_delete(*keys: str) -> None:
    try:
        cache.delete_many(keys)
    except RedisError as exc:
        _failed("delete", exc)


class LocalMemo:
    """A few seconds of process-local memory in front of the shared cache (verified API keys).

    Entries live ``seconds()`` of wall-clock time; ``forget`` drops one at once in this process
    (other processes see a change when their entry expires). Bounded: past ``max_entries`` the
    memo starts over. ``generation`` moves on every ``forget`` and ``clear``: a reader notes it
    before fetching a value and passes it to ``set``, which then stores nothing if something was
    forgotten meanwhile (the value it fetched may be the very one that was dropped).

    Kept rather than ``cachetools.TTLCache``: this read is on every API-key request, and a TTLCache
    read under the lock it needs across threads costs an order of magnitude more (bench/README.md).
    """

    def __init__(self, seconds, *, max_entries: int = 10_000) -> None:
        self._seconds = seconds
        self._entries: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self.generation = 0

    def get(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, until = entry
        if time.time() >= until:
            self._entries.pop(key, None)
            return None
        return value

    def set(self, key: str, value: Any, *, generation: int | None = None) -> None:
        seconds = self._seconds()
        if seconds <= 0:
            return
        with self._lock:
            if generation is not None and generation != self.generation:
                return  # something was forgotten since the caller fetched ``value``
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (value, time.time() + seconds)

    def forget(self, *keys: str) -> None:
        with self._lock:
            self.generation += 1
            for key in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


def _local_api_key_seconds() -> float:
    from django.conf import settings

    return settings.API_KEY_LOCAL_CACHE_SECONDS


# Verified API-key snapshots by key prefix (accounts.authentication), API_KEY_LOCAL_CACHE_SECONDS each.
api_key_memo = LocalMemo(_local_api_key_seconds)

# Decoded access tokens by their text (accounts.authentication): the signature check of a string
# has one answer, so a person's following requests skip it (expiry is still checked every time).
# Nothing about revocation is kept here: that is asked of the shared cache on every request.
decoded_token_memo = LocalMemo(lambda: 60, max_entries=10_000)
