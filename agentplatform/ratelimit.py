"""Rate limits per endpoint scope, counted atomically on the shared cache.

    enforce("auth.token", client.rate_limit_key())    # raises RateLimited when over the limit
    enforce("prompts.resolve", identity_key(request))

Limits come from ``settings.RATE_LIMITS`` (``{"scope": "N/period"}``, period ``s``, ``m``, ``h`` or
``d`` with an optional multiplier: ``10/5m``). API views name their scope the DRF way,
``throttle_scope = "..."``; ``agentplatform.throttling.ScopedRateLimit`` (DRF's
``ScopedRateThrottle``, the default throttle, so it runs after authentication) counts the request
here with the caller's identity. Code outside a view (the login's per-username limit) calls
``enforce``.

**Windows.** Fixed windows of the rate's period, each key's shifted by a per-key offset (CRC32 of
the key modulo the period) so that all callers' budgets do not come back at the same second. A
window ``w`` covers every second whose integer timestamp is at most ``w``; the cache key is
``throttle_<scope>_<identity>:<w>`` (DRF's ``cache_format`` and the window), expiring just after
it.

**One round trip, exact under concurrency.** DRF's own throttle keeps a list of timestamps per
key (a read and a write that race), and a cache's ``add`` then ``incr`` is two or three round trips
with a gap in which the window can end. On Redis one Lua script does ``SET key 0 NX EX ttl`` +
``INCRBY key n`` in a single command: every concurrent request gets a distinct count, so against a
limit L exactly L of them pass. Other caches (local memory in tests, files in ``make run``) use
``add``/``incr``.

**Leases.** A busy caller would pay that round trip on every request (a large share of a no-op
request's cost, bench/README.md). So on Redis each process reserves counts in *leases*: the first
request of a key in a window reserves 1, each following reservation of that key twice the previous
one, up to ``RATE_LIMIT_LEASE_SHARE`` of the limit (1 % by default), and the requests that follow
take the lease's numbers locally, without a round trip. A request is still limited exactly when
its number exceeds the limit, so no more than L requests ever pass; near the limit (a lease that
would cross it) reservations shrink back to 1, and once a process has seen the counter pass the
limit it refuses the rest of the window without asking again. The price is on the other side:
counts reserved by a process and not used before the window ends are lost, so a caller hammering
one key from P processes may be refused up to P leases (P % of the limit by default) early. Limits
under 1 / share (100 by default: every login limit) never lease and stay exact.

When the cache cannot be reached the scope's fail mode decides (``RATE_LIMIT_FAIL_CLOSED``
patterns, ``auth.*`` by default): fail-open serves the request unlimited, fail-closed answers 503.
Either way the fallback is logged (at most once per scope every few seconds) and counted as
``ratelimit_fallback_total{group, mode}``; no request gets a 500 because the cache is down.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import math
import threading
import time
import zlib
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured

from agentplatform import compat, counters
from agentplatform.client_ip import get_client_ip
from agentplatform.errors import DependencyUnavailable, RateLimited

logger = logging.getLogger(__name__)

# What a cache outage looks like from each backend: redis-py's errors, and OS errors (the file
# cache's disk, a refused socket).
CACHE_ERRORS = (redis.RedisError, OSError)
# Seconds between two "cache unreachable" log lines for one group: the counter counts every
# fallback, the log only needs to say that it is happening.
_LOG_EVERY_SECONDS = 10.0
# Seconds a window's counter outlives the window (clock skew between processes).
_EXPIRY_MARGIN = 5


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

    def error(self, rate: str) -> RateLimited:
        """The 429 this usage answers (envelope details: scope, limit, seconds to wait)."""
        return RateLimited(
            f"Rate limit of {rate} exceeded for {self.group}; retry in {self.reset_in} s.",
            retry_after=self.reset_in,
            details={"group": self.group, "limit": self.limit, "retry_after": self.reset_in},
        )


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


# SET NX EX + INCRBY as one command (half the client CPU of a MULTI/EXEC pipeline of the two).
_RESERVE_LUA = "redis.call('SET', KEYS[1], 0, 'NX', 'EX', ARGV[2]) return redis.call('INCRBY', KEYS[1], ARGV[1])"
_reserve_script = None


def _reserve_redis(cache: RedisCache, key: str, amount: int, ttl: int) -> int:
    """Adds ``amount`` to the window's counter (created with its expiry); returns the new total."""
    global _reserve_script
    full_key = cache.make_and_validate_key(key)
    client = compat.redis_client(cache, full_key)
    if _reserve_script is None:
        _reserve_script = client.register_script(_RESERVE_LUA)  # EVALSHA, reloading on NOSCRIPT
    return int(_reserve_script(keys=[full_key], args=[amount, ttl], client=client))


class _Lease:
    """Counts ``next..last`` of one window's counter, reserved by this process."""

    __slots__ = ("last", "next", "size", "window")

    def __init__(self, first: int, last: int, size: int, window: int) -> None:
        self.next, self.last, self.size, self.window = first, last, size, window


class LeaseTable:
    """This process's leases, per cache key (one key per group, identity and window)."""

    # Leases of past windows are dropped when the table grows past this many keys.
    PRUNE_AT = 4096

    def __init__(self) -> None:
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._leases.clear()

    def take(self, cache: RedisCache, key: str, *, limit: int, ttl: int, window: int) -> int:
        """The next count of ``key``: from this process's lease, else from a new reservation."""
        with self._lock:
            lease = self._leases.get(key)
            # Within a lease; or past the limit, which this window's counter never comes back under,
            # so the refusals that follow need no round trip.
            if lease is not None and (lease.next <= lease.last or lease.last > limit):
                count = lease.next
                lease.next += 1
                return count
            size = _next_lease_size(lease, limit)
        total = _reserve_redis(cache, key, size, ttl)
        fresh = _Lease(total - size + 1, total, size, window)
        with self._lock:
            count = fresh.next
            fresh.next += 1
            current = self._leases.get(key)
            # Another thread may have installed a lease meanwhile: keep whichever has more left.
            if current is None or current.last - current.next <= fresh.last - fresh.next:
                if current is None and len(self._leases) >= self.PRUNE_AT:
                    self._prune(window)
                self._leases[key] = fresh
            return count

    def _prune(self, window: int) -> None:
        for stale in [k for k, lease in self._leases.items() if lease.window < window]:
            del self._leases[stale]


def _next_lease_size(previous: _Lease | None, limit: int) -> int:
    share = settings.RATE_LIMIT_LEASE_SHARE
    ceiling = int(limit * share)
    if previous is None or ceiling <= 1:
        return 1
    size = min(ceiling, previous.size * 2)
    # Near the limit, reserve one at a time so that no process holds counts others could use.
    return size if previous.last + size <= limit else 1


_leases = LeaseTable()


def _increment(cache, key: str, ttl: int, *, limit: int, window: int) -> int:
    if isinstance(cache, RedisCache):
        return _leases.take(cache, key, limit=limit, ttl=ttl, window=window)
    if cache.add(key, 1, ttl):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens the next bucket
        return 1 if cache.add(key, 1, ttl) else cache.incr(key)


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.lru_cache(maxsize=256)
def parse_rate(rate: str) -> tuple[int, int]:
    """``"N/period"`` as (N, seconds); the period is s, m, h or d, optionally multiplied (``10/5m``)."""
    count, period = rate.split("/")
    multiplier, unit = period[:-1], period[-1]
    return int(count), int(multiplier or 1) * _PERIODS[unit]


def window_of(key: str, period: int) -> int:
    """The last second of the window ``key`` is in now (windows shifted per key, see the module docstring)."""
    now = int(time.time())
    if period == 1:
        return now
    window = now - now % period + zlib.crc32(key.encode()) % period
    return window if window >= now else window + period


def bucket(group: str, identity: str) -> str:
    """The key of ``identity``'s counter in ``group``, without the window (DRF's ``cache_format``)."""
    return f"throttle_{group}_{identity}"


def _read(cache, key: str) -> int:
    return int(cache.get(key, 0) or 0)


def usage(group: str, key: str, *, increment: bool = True) -> Usage | None:
    """Count one request of identity ``key`` against ``group`` (or only read, ``increment=False``).

    None when rate limiting is off or the cache is down and the group fails open.
    """
    if not settings.RATELIMIT_ENABLE:
        return None
    limit, period = parse_rate(rate_for(group))
    counter = bucket(group, key)
    window = window_of(counter, period)
    cache_key = f"{counter}:{window}"
    if time.monotonic() < _down_until:
        return _cache_down(group, None)
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    try:
        if increment:
            count = _increment(cache, cache_key, period + _EXPIRY_MARGIN, limit=limit, window=window)
        else:
            count = _read(cache, cache_key)
    except CACHE_ERRORS as exc:
        return _cache_down(group, exc)
    return Usage(group=group, count=count, limit=limit, reset_in=max(1, math.ceil(window + 1 - time.time())))


def enforce(group: str, key: str) -> Usage | None:
    """Count a request of ``key`` in ``group``; raise ``RateLimited`` (429, Retry-After) when over.

    Raises ``DependencyUnavailable`` (503) when the cache is down and the group fails closed.
    """
    current = usage(group, key)
    if current is not None and current.limited:
        counters.increment("ratelimit_rejections_total", group=group)
        raise current.error(rate_for(group))
    return current


def reset_fallback_state() -> None:
    """Forget a remembered cache outage and this process's leases (tests; after an operator fixed Redis)."""
    global _down_until
    with _state_lock:
        _down_until = 0.0
        _last_logged.clear()
    _leases.clear()
