"""Circuit breakers for every external dependency, shared across processes through Redis.

    breaker = get_breaker("search")
    response = breaker.call(client.get, url)               # sync
    response = await breaker.call_async(client.get, url)   # async: failures inside await count

Configuration is one setting, ``CIRCUIT_BREAKERS``: a ``"default"`` entry that unknown names use,
plus one entry per external service overriding any of ``fail_max`` (consecutive failures that
open the breaker), ``reset_timeout`` (seconds open before a trial call), ``success_threshold``
(successful trials that close it again), ``max_retry_after`` (seconds; the longest an upstream
``Retry-After`` may hold it open) and ``exclude`` (dotted paths of extra exception classes that do
not count as failures).

What counts as a failure: any exception, except answers that blame the caller rather than the
upstream: ``httpx.HTTPStatusError`` with a 4xx status (but 408 and 429, which are the upstream's
trouble), and the platform's own 4xx ``PlatformError`` subclasses. A failure that carries a
``Retry-After`` (a 429/503 answer, or a platform error with ``retry_after``) opens the breaker at
once and keeps it open for that long (bounded by ``max_retry_after``): the upstream has told us
when to come back.

The state machine is the classic one (Nygard's *Release It!*): closed, counting consecutive
failures; open until a deadline, refusing calls; half-open, letting trial calls through until
``success_threshold`` of them succeed (closed) or one fails (open again). It is owned here rather
than taken from pybreaker, whose ``CircuitBreaker.call`` holds one lock for the whole guarded call
(a slow upstream would serialise every caller of the breaker), whose async support is
Tornado-only, and whose Redis storage swallows connection errors and then reports "closed".

* **Shared state**: one Redis hash per breaker, ``<CIRCUIT_BREAKER_KEY_PREFIX>:<name>`` (fields
  ``state``, ``failures``, ``successes``, ``open_until``). A call reads it once (``HMGET``); a
  transition is a compare-and-set script, so when two processes see the same trip only the one
  that made it records it. Nothing is locked during the guarded call.
* **Redis unreachable**: the breaker keeps its state in this process until Redis answers again
  (retried every ``CIRCUIT_BREAKER_REDIS_RETRY_SECONDS``), logging and counting the fallback.
  Nothing touches Redis at import or start-up.
* Every transition this process makes is logged and stored as a ``BreakerTransition`` row (written
  by a background thread: callers may be inside an event loop or a transaction that rolls back).
  Transitions merely observed from another process's write are not recorded twice.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from agentplatform import counters
from agentplatform.errors import DependencyUnavailable, PlatformError
from agentplatform.request_id import get_request_id

logger = logging.getLogger(__name__)

T = TypeVar("T")

STATE_CLOSED = "closed"
STATE_OPEN = "open"
STATE_HALF_OPEN = "half-open"

DEFAULT_CONFIG = {"fail_max": 5, "reset_timeout": 30.0, "success_threshold": 1, "max_retry_after": 300.0}
# Exceptions that end a call without saying anything about the upstream's health.
_NEUTRAL = (GeneratorExit, KeyboardInterrupt, SystemExit)


class CircuitOpen(DependencyUnavailable):
    """The breaker in front of a dependency is open: the call was refused without being attempted."""

    default_message = "A service this request depends on is unavailable; retry later."

    def __init__(self, breaker: str, *, retry_after: int | None = None):
        super().__init__(
            f"The {breaker} service is unavailable; retry later.",
            retry_after=retry_after,
            details={"dependency": breaker, "reason": "circuit_open"},
        )
        self.breaker = breaker


# --- what counts as a failure ---------------------------------------------------------------------


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    if isinstance(exc, PlatformError):
        return exc.status_code
    return None


def is_caller_error(exc: BaseException) -> bool:
    """True for upstream answers that blame the request (4xx but 408/429): they don't open breakers."""
    status = _status_of(exc)
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_hint(exc: BaseException) -> float | None:
    """The upstream's own "come back in N seconds", when the failure carries one."""
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (429, 503):
        return parse_retry_after(exc.response.headers.get("Retry-After"))
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, int | float) and hint > 0 and not isinstance(exc, CircuitOpen):
        return float(hint)
    return None


# --- state: one Redis hash per breaker, or this process's memory while Redis is unreachable -------


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A breaker's shared state as one read saw it."""

    state: str = STATE_CLOSED
    failures: int = 0
    successes: int = 0
    open_until: float = 0.0  # Unix time the open state ends


# KEYS[1] the hash; ARGV: expected state, new state, open_until ("" to leave it). Returns 1 when
# this call made the transition, 0 when the state was no longer the expected one.
_TRANSITION_LUA = """
local current = redis.call('HGET', KEYS[1], 'state') or 'closed'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'successes', 0)
if ARGV[2] == 'closed' then redis.call('HSET', KEYS[1], 'failures', 0) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'open_until', ARGV[3]) end
return 1
"""
# Moves open_until later, never earlier.
_EXTEND_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'open_until', ARGV[1]) end
return 1
"""
_FIELDS = ("state", "failures", "successes", "open_until")


class RedisState:
    """A breaker's state in a Redis hash, shared by every process."""

    def __init__(self, client: redis.Redis, key: str):
        self._client, self._key = client, key
        self._transition = client.register_script(_TRANSITION_LUA)
        self._extend = client.register_script(_EXTEND_LUA)

    def read(self) -> Snapshot:
        state, failures, successes, open_until = self._client.hmget(self._key, _FIELDS)
        return Snapshot(
            state.decode() if state else STATE_CLOSED,
            int(failures or 0),
            int(successes or 0),
            float(open_until or 0),
        )

    def add_failure(self) -> int:
        return int(self._client.hincrby(self._key, "failures", 1))

    def add_success(self) -> int:
        return int(self._client.hincrby(self._key, "successes", 1))

    def reset_failures(self) -> None:
        self._client.hset(self._key, "failures", 0)

    def transition(self, expected: str, target: str, open_until: float | None = None) -> bool:
        args = [expected, target, repr(open_until) if open_until is not None else ""]
        return bool(self._transition(keys=[self._key], args=args))

    def extend_open(self, until: float) -> None:
        self._extend(keys=[self._key], args=[repr(until)])

    def clear(self) -> None:
        self._client.hset(self._key, mapping={"state": STATE_CLOSED, "failures": 0, "successes": 0, "open_until": 0})


class LocalState:
    """The same state in this process's memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = Snapshot()

    def read(self) -> Snapshot:
        return self._state

    def _replace(self, **changes) -> Snapshot:
        self._state = dataclasses.replace(self._state, **changes)
        return self._state

    def add_failure(self) -> int:
        with self._lock:
            return self._replace(failures=self._state.failures + 1).failures

    def add_success(self) -> int:
        with self._lock:
            return self._replace(successes=self._state.successes + 1).successes

    def reset_failures(self) -> None:
        with self._lock:
            self._replace(failures=0)

    def transition(self, expected: str, target: str, open_until: float | None = None) -> bool:
        with self._lock:
            if self._state.state != expected:
                return False
            changes: dict[str, Any] = {"state": target, "successes": 0}
            if target == STATE_CLOSED:
                changes["failures"] = 0
            if open_until is not None:
                changes["open_until"] = open_until
            self._replace(**changes)
            return True

    def extend_open(self, until: float) -> None:
        with self._lock:
            if until > self._state.open_until:
                self._replace(open_until=until)

    def clear(self) -> None:
        with self._lock:
            self._state = Snapshot()


_redis_client: redis.Redis | None = None
_redis_lock = threading.Lock()


def _shared_redis() -> redis.Redis | None:
    """The breakers' Redis client (no connection is made here), or None when none is configured."""
    global _redis_client
    url = settings.CIRCUIT_BREAKER_REDIS_URL
    if not url:
        return None
    with _redis_lock:
        if _redis_client is None:
            _redis_client = redis.Redis.from_url(
                url,
                socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
                health_check_interval=30,
            )
        return _redis_client


class SharedState:
    """``RedisState`` while Redis answers; ``LocalState`` (this process only) while it doesn't."""

    _UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)

    def __init__(self, *, breaker: str, client: redis.Redis | None, key: str, retry_seconds: float):
        self._breaker = breaker
        self._shared = RedisState(client, key) if client is not None else None
        self._local = LocalState()
        self._retry_seconds = retry_seconds
        self._retry_at = 0.0
        self._degraded = False

    @property
    def mode(self) -> str:
        """``shared`` (Redis), ``local`` (Redis unreachable: this process only) or ``local-only``."""
        if self._shared is None:
            return "local-only"
        return "local" if self._degraded else "shared"

    def _unreachable(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self._retry_seconds
        if not self._degraded:
            self._degraded = True
            logger.warning(
                "breaker %s: Redis unreachable (%s); using this process's local breaker state",
                self._breaker,
                exc,
                extra={"breaker": self._breaker},
            )
            counters.increment("breaker_storage_fallback_total", breaker=self._breaker)

    def _run(self, operation: str, *args) -> Any:
        if self._shared is not None and time.monotonic() >= self._retry_at:
            try:
                result = getattr(self._shared, operation)(*args)
            except self._UNREACHABLE as exc:
                self._unreachable(exc)
            else:
                if self._degraded:
                    self._degraded = False
                    logger.info("breaker %s: Redis is back; state is shared again", self._breaker)
                return result
        return getattr(self._local, operation)(*args)

    def read(self) -> Snapshot:
        return self._run("read")

    def add_failure(self) -> int:
        return self._run("add_failure")

    def add_success(self) -> int:
        return self._run("add_success")

    def reset_failures(self) -> None:
        self._run("reset_failures")

    def transition(self, expected: str, target: str, open_until: float | None = None) -> bool:
        return self._run("transition", expected, target, open_until)

    def extend_open(self, until: float) -> None:
        self._run("extend_open", until)

    def clear(self) -> None:
        self._run("clear")


# --- recording transitions ------------------------------------------------------------------------

_recorder: ThreadPoolExecutor | None = None
_recorder_lock = threading.Lock()
_pending = []
_PROCESS = f"{socket.gethostname()}:{os.getpid()}"


def _write_transition(fields: dict) -> None:
    from django.db import connection

    from agentplatform.models import BreakerTransition

    try:
        BreakerTransition.objects.create(**fields)
    except Exception:  # the database may be the thing that is down; the log line still stands
        logger.exception("breaker %s: could not store the transition", fields["breaker"])
    finally:
        connection.close()  # transitions are rare: don't keep an idle connection in this thread


def _record(fields: dict) -> None:
    global _recorder
    with _recorder_lock:
        if _recorder is None:
            _recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="breaker-transitions")
        _pending[:] = [future for future in _pending if not future.done()]
        _pending.append(_recorder.submit(_write_transition, fields))


def flush_transitions(timeout: float = 10.0) -> None:
    """Wait until recorded transitions are in the database (tests, shutdown)."""
    with _recorder_lock:
        pending = list(_pending)
    wait(pending, timeout=timeout)


# --- the breaker callers use ----------------------------------------------------------------------


class Breaker:
    """One named circuit breaker; get it with ``get_breaker(name)``."""

    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.config = config
        self.fail_max = int(config["fail_max"])
        self.reset_timeout = float(config["reset_timeout"])
        self.success_threshold = int(config["success_threshold"])
        self.max_retry_after = float(config["max_retry_after"])
        self.excluded = tuple(
            import_string(path) if isinstance(path, str) else path for path in config.get("exclude", ())
        )
        self.last_error = ""
        self._state = SharedState(
            breaker=name,
            client=_shared_redis(),
            key=f"{settings.CIRCUIT_BREAKER_KEY_PREFIX}:{name}",
            retry_seconds=settings.CIRCUIT_BREAKER_REDIS_RETRY_SECONDS,
        )

    def __repr__(self) -> str:
        return f"<Breaker {self.name} {self.state}>"

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` as stored (an open breaker past its timeout stays
        ``open`` until the next call tries it)."""
        return self._state.read().state

    @property
    def storage_mode(self) -> str:
        return self._state.mode

    @property
    def fail_counter(self) -> int:
        return self._state.read().failures

    def counts(self, exc: BaseException) -> bool:
        """Whether ``exc`` says something about the upstream's health (else it counts as a success)."""
        return not is_caller_error(exc) and not isinstance(exc, self.excluded)

    def _move(self, expected: str, target: str, *, open_until: float | None = None) -> None:
        """Make the transition unless another process already has; record it only if made here."""
        if not self._state.transition(expected, target, open_until):
            return
        last_error = self.last_error if target == STATE_OPEN else ""
        log = logger.warning if target == STATE_OPEN else logger.info
        log(
            "breaker %s: %s -> %s%s",
            self.name,
            expected,
            target,
            f" after {last_error}" if last_error else "",
            extra={"breaker": self.name, "from_state": expected, "to_state": target},
        )
        counters.increment("breaker_transitions_total", breaker=self.name, to=target)
        _record(
            {
                "breaker": self.name,
                "from_state": expected,
                "to_state": target,
                "at": datetime.now(UTC),
                "last_error": last_error,
                "storage": self.storage_mode,
                "process": _PROCESS,
                "request_id": get_request_id() or "",
            }
        )

    def _before_call(self) -> Snapshot:
        seen = self._state.read()
        if seen.state != STATE_OPEN:
            return seen
        now = time.time()
        if now < seen.open_until:
            counters.increment("breaker_rejections_total", breaker=self.name)
            raise CircuitOpen(self.name, retry_after=max(1, math.ceil(seen.open_until - now)))
        self._move(STATE_OPEN, STATE_HALF_OPEN)
        return Snapshot(STATE_HALF_OPEN)

    # After the call, the state read before it judges the outcome: re-reading the shared state
    # would cost a Redis round trip per call.
    def _after_success(self, seen: Snapshot) -> None:
        if seen.state == STATE_HALF_OPEN:
            if self._state.add_success() >= self.success_threshold:
                self._move(STATE_HALF_OPEN, STATE_CLOSED)
        elif seen.failures:
            self._state.reset_failures()

    def _after_failure(self, exc: BaseException, seen: Snapshot) -> None:
        if isinstance(exc, _NEUTRAL) or not isinstance(exc, Exception):
            return  # cancellation and shutdown say nothing about the upstream
        if not self.counts(exc):
            self._after_success(seen)
            return
        self.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
        if seen.state == STATE_HALF_OPEN:
            self._move(STATE_HALF_OPEN, STATE_OPEN, open_until=time.time() + self.reset_timeout)
        elif self._state.add_failure() >= self.fail_max:
            self._move(STATE_CLOSED, STATE_OPEN, open_until=time.time() + self.reset_timeout)
        hint = retry_after_hint(exc)
        if hint:
            self._hold_open(hint)

    def _hold_open(self, seconds: float) -> None:
        """Keep the breaker open for ``seconds`` (bounded), as the upstream's Retry-After asked."""
        until = time.time() + min(seconds, self.max_retry_after)
        current = self._state.read().state
        if current != STATE_OPEN:
            self._move(current, STATE_OPEN, open_until=time.time() + self.reset_timeout)
        self._state.extend_open(until)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through the breaker; raises ``CircuitOpen`` while it is open."""
        seen = self._before_call()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._after_failure(exc, seen)
            raise
        self._after_success(seen)
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` through the breaker; failures raised inside the await count."""
        seen = self._before_call()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._after_failure(exc, seen)
            raise
        self._after_success(seen)
        return result

    def reset(self) -> None:
        """Close the breaker and clear its counters (admin action, tests)."""
        current = self._state.read().state
        if current != STATE_CLOSED:
            self._move(current, STATE_CLOSED)
        self._state.clear()


# --- registry -------------------------------------------------------------------------------------

_registry: dict[str, Breaker] = {}
_registry_lock = threading.Lock()


def breaker_config(name: str) -> dict[str, Any]:
    """The effective configuration of ``name``: built-in defaults, the ``default`` entry, its own entry."""
    configured = settings.CIRCUIT_BREAKERS
    return {**DEFAULT_CONFIG, **configured.get("default", {}), **configured.get(name, {})}


def get_breaker(name: str) -> Breaker:
    """The process-wide breaker called ``name`` (created on first use from ``CIRCUIT_BREAKERS``)."""
    breaker = _registry.get(name)
    if breaker is None:
        with _registry_lock:
            breaker = _registry.get(name)
            if breaker is None:
                breaker = _registry[name] = Breaker(name, breaker_config(name))
    return breaker


def all_breakers() -> dict[str, Breaker]:
    """Every breaker this process has used, plus every configured one."""
    for name in settings.CIRCUIT_BREAKERS:
        if name != "default":
            get_breaker(name)
    return dict(_registry)


def reset_registry() -> None:
    """Forget every breaker instance (the next ``get_breaker`` re-reads settings); state in Redis stays."""
    global _redis_client
    with _registry_lock:
        _registry.clear()
    with _redis_lock:
        if _redis_client is not None:
            _redis_client.close()
        _redis_client = None


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("CIRCUIT_BREAKER") or setting in ("REDIS_SOCKET_TIMEOUT",):
        reset_registry()


def breakers_info() -> dict[str, dict[str, Any]]:
    """Informational section for /readyz: state and storage mode of every known breaker."""
    return {
        name: {"state": breaker.state, "storage": breaker.storage_mode, "failures": breaker.fail_counter}
        for name, breaker in sorted(all_breakers().items())
    }
