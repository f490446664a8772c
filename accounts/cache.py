"""The shared cache as the accounts app uses it: a speed-up in front of the database, never a source of truth.

Every read that misses (or fails because Redis is down) falls through to the database, so a
cache outage costs queries, not correctness; these wrappers turn a Redis error into a miss and
count it for /metrics.
"""

from __future__ import annotations

import contextlib
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


# Verified API-key snapshots, ``k:<key prefix>`` (accounts.authentication), API_KEY_LOCAL_CACHE_SECONDS each.
api_key_memo = LocalMemo(_local_api_key_seconds)

# Decoded access tokens by their text (accounts.authentication): the signature check of a string
# has one answer, so a person's following requests skip it (expiry is still checked every time).
# Nothing about revocation is kept here: that is asked of the shared cache on every request.
decoded_token_memo = LocalMemo(lambda: 60, max_entries=10_000)


def _local_jwt_seconds() -> float:
    from django.conf import settings

    return settings.JWT_USER_LOCAL_CACHE_SECONDS


# What a Bearer request needs to know, remembered by this process while its invalidation channel
# is live (accounts.authentication): ``u:<user id>`` -> the user's snapshot, ``t:<jti>`` -> True
# for an access token found not revoked. Dropped at once by a message on the channel.
jwt_memo = LocalMemo(_local_jwt_seconds, max_entries=20_000)


class MemoInvalidations:
    """This process's subscription to the channel that drops entries of its memos, polled per request.

    A change that a memo must not outlive (a logout's denylisted ``jti``, a user's new token
    version, status or role, a revoked API key) is written to the shared cache and then published
    on one Redis channel (``publish``). Every process holds a subscription, and each request
    drains it (``drain``: a non-blocking read of the socket, no round trip) before trusting a memo.
    Redis writes a published message to every subscriber before its reply reaches the publisher,
    so by the time the changing request has answered, the message waits in every other process's
    socket, and that process's next request reads it before looking at its memo: the next request
    anywhere is refused. A reader notes the memo's generation before it reads the shared cache and
    remembers what it read only if no message arrived meanwhile (``LocalMemo.set``).

    The memo is trusted only while the subscription is live: before it is confirmed, after any
    error (then the memo is cleared, and the subscription retried after a second), and without a
    Redis cache (tests on local memory, ``make run``), requests read the shared cache as before;
    a reconnection clears the memos (messages may have been lost meanwhile). A publish that fails
    (Redis down at that moment) is logged and counted, and a connection that dies without a word
    (no FIN) goes unnoticed: the memos' few seconds bound what either costs.
    """

    RETRY_SECONDS = 1.0

    def __init__(self, memos: dict[str, LocalMemo]) -> None:
        self._memos = memos  # message prefix ("u", "t", "k") -> the memo its keys live in
        self._lock = threading.Lock()
        self._pubsub = None
        self._pid: int | None = None
        self._retry_at = 0.0

    @staticmethod
    def _client():
        from agentplatform import compat

        return compat.redis_client(cache)

    @classmethod
    def channel(cls, client) -> str:
        # Channels are not per Redis database: name the database and key prefix in it.
        database = client.connection_pool.connection_kwargs.get("db", 0)
        return f"{cache.make_key('accounts:memo-invalidate')}@{database}"

    def _clear_all(self) -> None:
        for memo in set(self._memos.values()):
            memo.clear()

    def _subscribe(self) -> bool:
        import os

        from django.conf import settings

        client = self._client()
        if client is None:
            return False
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel(client))
            confirmed = pubsub.get_message(timeout=settings.REDIS_SOCKET_TIMEOUT)
            if not confirmed or confirmed.get("type") != "subscribe":
                raise RedisError("no subscription confirmation")
        except RedisError:
            pubsub.close()
            raise
        # redis-py reconnects a broken subscription by itself (and subscribes again), silently:
        # what was published in between is lost, so every reconnection clears the memos.
        pubsub.connection.register_connect_callback(self._reconnected)
        self._pubsub, self._pid = pubsub, os.getpid()
        self._clear_all()  # whatever was remembered before may have missed a message
        return True

    def _reconnected(self, connection) -> None:
        counters.increment("accounts_memo_resubscribed")
        self._clear_all()

    def _reset(self, exc: Exception) -> None:
        _failed("subscribe", exc)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                self._pubsub.close()
        self._pubsub = None
        self._retry_at = time.monotonic() + self.RETRY_SECONDS
        self._clear_all()

    def drain(self) -> bool:
        """Applies every message received so far; True when the memos may be trusted."""
        import os

        with self._lock:
            if self._pubsub is None or self._pid != os.getpid():
                self._pubsub = None  # a forked child never reads its parent's socket
                if time.monotonic() < self._retry_at:
                    return False
                try:
                    if not self._subscribe():
                        self._retry_at = float("inf")  # not a Redis cache: never live
                        return False
                except RedisError as exc:
                    self._reset(exc)
                    return False
            try:
                while True:
                    message = self._pubsub.get_message(timeout=0.0)
                    if message is None:
                        return True
                    if message.get("type") == "message":
                        self._apply(message["data"])
            except (RedisError, OSError) as exc:
                self._reset(exc)
                return False

    def _apply(self, data) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        if text == "*":
            self._clear_all()
            return
        memo = self._memos.get(text.partition(":")[0])
        if memo is not None:
            memo.forget(text)

    def publish(self, *keys: str) -> None:
        """Drops ``keys`` from every process's memo (this one's at once)."""
        for key in keys:
            memo = self._memos.get(key.partition(":")[0])
            if memo is not None:
                memo.forget(key)
        client = self._client()
        if client is None:
            return
        try:
            channel = self.channel(client)
            for key in keys:
                client.publish(channel, key)
        except RedisError as exc:
            _failed("publish", exc)

    def stop(self) -> None:
        """Closes the subscription (tests); the next ``drain`` subscribes again."""
        with self._lock:
            if self._pubsub is not None:
                self._pubsub.close()
            self._pubsub = None
            self._retry_at = 0.0


memo_invalidations = MemoInvalidations({"u": jwt_memo, "t": jwt_memo, "k": api_key_memo})
