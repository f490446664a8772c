"""Rate limits per endpoint group, counted atomically on the shared cache.

    enforce("auth.token", username_key(username))     # raises RateLimited when over the limit
    enforce("prompts.resolve", identity_key(request))

Limits come from ``settings.RATE_LIMITS`` (``{"group": "N/period"}``). API views name their group
with ``ratelimit_group = "..."``; ``agentplatform.throttling.GroupRateThrottle`` (a DRF default
throttle, so it runs after authentication) calls ``enforce`` with the caller's identity.

Windows, rates and cache keys are django-ratelimit's (``django_ratelimit.core``), so a
``@ratelimit(group=..., key=...)`` decorator or ``is_ratelimited()`` call elsewhere sees the same
buckets. The increment is not: django-ratelimit does ``add`` then ``incr``, and Django's Redis
``incr`` is EXISTS followed by INCR, so a window ending between the two calls makes the request
fail (closed or open) and every request costs three round trips. Here one MULTI/EXEC does
``SET key 0 NX EX ttl`` + ``INCR key``: every concurrent request gets a distinct count, so against
a limit L exactly L of them pass. Other caches (local memory in tests, files in ``make run``) use
``add``/``incr``.

When the cache cannot be reached the group's fail mode decides (``RATE_LIMIT_FAIL_CLOSED``
patterns, ``auth.*`` by default): fail-open serves the request unlimited, fail-closed answers 503.
Either way the fallback is logged (at most once per group every few seconds) and counted as
``ratelimit_fallback_total{group, mode}``; no request gets a 500 because the cache is down.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate

from agentplatform import counters
from agentplatform.client_ip import get_client_ip
from agentplatform.errors import DependencyUnavailable, RateLimited

logger = logging.getLogger(__name__)

# What a cache outage looks like from each backend: redis-py's errors, and OS errors (the file
# cache's disk, a refused socket).
CACHE_ERRORS = (redis.RedisError, OSError)
# Seconds between two "cache unreachable" log lines for one group: the counter counts every
# fallback, the log only needs to say that it is happening.
_LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class Usage:
    """Where a key stands in its current window."""

    group: str
    count: int
    limit: int
    reset_in: int  # seconds until the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def limited(self) -> bool:
        return self.count > self.limit


# --- keys -------------------------------------------------------------------------------------------


def identity_key(request) -> str:
    """The bucket of the caller: its API key, else its user, else its (validated) client IP.

    Only authenticated objects and the trusted-proxy client address are used, never a raw header
    value, so a caller cannot get a fresh budget by inventing identifiers.
    """
    auth = getattr(request, "auth", None)
    key_id = getattr(auth, "pk", None) or getattr(auth, "id", None)
    if key_id is not None:
        return f"apikey:{key_id}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{get_client_ip(request)}"


def username_key(username: str) -> str:
    """A bucket for a login name (case-insensitive, bounded): limits guessing one account's password."""
    normalised = (username or "").strip().casefold()[:256]
    return "username:" + hashlib.sha256(normalised.encode()).hexdigest()[:32]


# --- fail modes -------------------------------------------------------------------------------------


def fail_mode(group: str) -> str:
    """``"closed"`` when ``group`` matches a ``RATE_LIMIT_FAIL_CLOSED`` pattern, else ``"open"``."""
    patterns = settings.RATE_LIMIT_FAIL_CLOSED
    return "closed" if any(fnmatch.fnmatchcase(group, pattern) for pattern in patterns) else "open"


_last_logged: dict[str, float] = {}
_down_until = 0.0
_state_lock = threading.Lock()


def _cache_down(group: str, exc: BaseException | None) -> Usage | None:
    """The answer for ``group`` while the cache is unreachable: unlimited, or a 503."""
    global _down_until
    mode = fail_mode(group)
    counters.increment("ratelimit_fallback_total", group=group, mode=mode)
    now = time.monotonic()
    with _state_lock:
        if exc is not None:
            # Don't make every request wait for the cache's socket timeout during an outage.
            _down_until = now + settings.RATE_LIMIT_CACHE_RETRY_SECONDS
        should_log = now - _last_logged.get(group, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS
        if should_log:
            _last_logged[group] = now
    if should_log:
        logger.warning(
            "rate limit cache unreachable (%s); group %s fails %s",
            exc.__class__.__name__ if exc else "recently failed",
            group,
            mode,
            extra={"ratelimit_group": group, "fail_mode": mode},
        )
    if mode == "closed":
        raise DependencyUnavailable(
            "Rate limiting is unavailable, so this endpoint is refusing requests; retry later.",
            retry_after=max(1, round(settings.RATE_LIMIT_CACHE_RETRY_SECONDS)),
        )
    return None


# --- counting ---------------------------------------------------------------------------------------


def rate_for(group: str) -> str:
    try:
        return settings.RATE_LIMITS[group]
    except KeyError:
        raise ImproperlyConfigured(
            f"Rate-limit group {group!r} is not in settings.RATE_LIMITS; add it (with its N/period) there."
        ) from None


def _increment(cache, key: str, ttl: int) -> int:
    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        client = cache._cache.get_client(full_key, write=True)
        pipe = client.pipeline(transaction=True)
        pipe.set(full_key, 0, nx=True, ex=ttl)
        pipe.incr(full_key)
        _, count = pipe.execute()
        return int(count)
    if cache.add(key, 1, ttl):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens the next bucket
        return 1 if cache.add(key, 1, ttl) else cache.incr(key)


def _read(cache, key: str) -> int:
    return int(cache.get(key, 0) or 0)


def usage(group: str, key: str, *, increment: bool = True) -> Usage | None:
    """Count one request of ``key`` against ``group`` (or only read, ``increment=False``).

    None when rate limiting is off or the cache is down and the group fails open.
    """
    if not settings.RATELIMIT_ENABLE:
        return None
    rate = rate_for(group)
    limit, period = _split_rate(rate)
    window = _get_window(key, period)
    cache_key = _make_cache_key(group, window, rate, key, None)
    if time.monotonic() < _down_until:
        return _cache_down(group, None)
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    try:
        count = _increment(cache, cache_key, period + EXPIRATION_FUDGE) if increment else _read(cache, cache_key)
    except CACHE_ERRORS as exc:
        return _cache_down(group, exc)
    # django-ratelimit's window ``w`` covers every second whose integer timestamp is <= w.
    return Usage(group=group, count=count, limit=limit, reset_in=max(1, math.ceil(window + 1 - time.time())))


def enforce(group: str, key: str) -> Usage | None:
    """Count a request of ``key`` in ``group``; raise ``RateLimited`` (429, Retry-After) when over.

    Raises ``DependencyUnavailable`` (503) when the cache is down and the group fails closed.
    """
    current = usage(group, key)
    if current is not None and current.limited:
        counters.increment("ratelimit_rejections_total", group=group)
        raise RateLimited(
            f"Rate limit of {rate_for(group)} exceeded for {group}; retry in {current.reset_in} s.",
            retry_after=current.reset_in,
            details={"group": group, "limit": current.limit, "retry_after": current.reset_in},
        )
    return current


def reset_fallback_state() -> None:
    """Forget a remembered cache outage (tests; after an operator fixed Redis)."""
    global _down_until
    with _state_lock:
        _down_until = 0.0
        _last_logged.clear()
