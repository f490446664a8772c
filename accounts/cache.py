"""The shared cache as the accounts app uses it: a speed-up in front of the database, never a source of truth.

Every read that misses (or fails because Redis is down) falls through to the database, so a
cache outage costs queries, not correctness; these wrappers turn a Redis error into a miss and
count it for /metrics.
"""

from __future__ import annotations

import logging
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
