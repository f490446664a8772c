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

Implementation notes:

* The state machine is pybreaker's, and its state lives in pybreaker's ``CircuitRedisStorage``
  under ``<CIRCUIT_BREAKER_KEY_PREFIX>:<name>:pybreaker:*``, so all processes share one state.
  pybreaker's Redis storage swallows connection errors and then reports "closed" with zero
  failures, which silently disables protection; here connection errors surface and the breaker
  switches to an in-process ``CircuitMemoryStorage`` until Redis answers again (retried every
  ``CIRCUIT_BREAKER_REDIS_RETRY_SECONDS``). Nothing touches Redis at import or start-up.
* pybreaker holds its lock for the whole guarded call (one slow call serialises every caller of
  that breaker) and its async support is Tornado-only. ``Breaker`` drives pybreaker's states
  itself: the lock guards only the state checks before and after the call, and ``call_async``
  awaits the coroutine between them, so exceptions raised inside ``await`` are counted.
* Every transition this process makes is logged and stored as a ``BreakerTransition`` row (written
  by a background thread: callers may be inside an event loop or a transaction that rolls back).
  Transitions merely observed from another process's write are not recorded twice.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pybreaker
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

STATE_CLOSED = pybreaker.STATE_CLOSED
STATE_OPEN = pybreaker.STATE_OPEN
STATE_HALF_OPEN = pybreaker.STATE_HALF_OPEN

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


# --- storage: pybreaker's Redis storage, with a local fallback while Redis is unreachable ---------


class _RedisUnreachable(Exception):
    """Raised instead of redis' connection errors so pybreaker's storage cannot swallow them."""


class _RaisingRedis:
    """A Redis client whose connection failures escape ``CircuitRedisStorage``'s ``except RedisError``."""

    def __init__(self, client: redis.Redis):
        self._client = client

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            try:
                return attribute(*args, **kwargs)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise _RedisUnreachable(str(exc)) from exc

        return call


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


class SharedStorage(pybreaker.CircuitBreakerStorage):
    """State in Redis (``CircuitRedisStorage``) while it answers; in this process while it doesn't."""

    def __init__(self, *, breaker: str, client: redis.Redis | None, namespace: str, retry_seconds: float):
        super().__init__("shared")
        self._breaker = breaker
        self._client = _RaisingRedis(client) if client is not None else None
        self._namespace = namespace
        self._retry_seconds = retry_seconds
        self._shared: pybreaker.CircuitRedisStorage | None = None
        self._local = pybreaker.CircuitMemoryStorage(STATE_CLOSED)
        self._retry_at = 0.0
        self._degraded = False

    @property
    def mode(self) -> str:
        """``shared`` (Redis), ``local`` (Redis unreachable: this process only) or ``local-only``."""
        if self._client is None:
            return "local-only"
        return "local" if self._degraded else "shared"

    def _storage(self) -> pybreaker.CircuitBreakerStorage | None:
        if self._client is None or time.monotonic() < self._retry_at:
            return None
        if self._shared is None:
            try:
                self._shared = pybreaker.CircuitRedisStorage(STATE_CLOSED, self._client, namespace=self._namespace)
            except _RedisUnreachable as exc:
                self._unreachable(exc)
                return None
        return self._shared

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

    def _run(self, operation: Callable[[pybreaker.CircuitBreakerStorage], T]) -> T:
        shared = self._storage()
        if shared is not None:
            try:
                result = operation(shared)
            except _RedisUnreachable as exc:
                self._unreachable(exc)
            else:
                if self._degraded:
                    self._degraded = False
                    logger.info("breaker %s: Redis is back; state is shared again", self._breaker)
                return result
        return operation(self._local)

    @property
    def state(self) -> str:
        return self._run(lambda storage: storage.state)

    @state.setter
    def state(self, state: str) -> None:
        self._run(lambda storage: setattr(storage, "state", state))

    def increment_counter(self) -> None:
        self._run(lambda storage: storage.increment_counter())

    def reset_counter(self) -> None:
        self._run(lambda storage: storage.reset_counter())

    def increment_success_counter(self) -> None:
        self._run(lambda storage: storage.increment_success_counter())

    def reset_success_counter(self) -> None:
        self._run(lambda storage: storage.reset_success_counter())

    @property
    def counter(self) -> int:
        return self._run(lambda storage: storage.counter)

    @property
    def success_counter(self) -> int:
        return self._run(lambda storage: storage.success_counter)

    @property
    def opened_at(self) -> datetime | None:
        return self._run(lambda storage: storage.opened_at)

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self._run(lambda storage: setattr(storage, "opened_at", value))


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


class _PlatformCircuitBreaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker, knowing which transitions this process made and skipping stale ones."""

    def __init__(self, *args, **kwargs):
        self.causing = False
        super().__init__(*args, **kwargs)

    def _move(self, target: str, move: Callable[[], Any]) -> Any:
        with self._lock:
            if self._state_storage.state == target:
                # Another process got there first: adopt its state (observed, not recorded).
                if self._state.name != target:
                    self.state = target
                return self._throw_new_error_on_trip
            self.causing = True
            try:
                return move()
            finally:
                self.causing = False

    def open(self) -> bool:
        return self._move(STATE_OPEN, super().open)

    def half_open(self) -> None:
        self._move(STATE_HALF_OPEN, super().half_open)

    def close(self) -> None:
        self._move(STATE_CLOSED, super().close)


class _TransitionListener(pybreaker.CircuitBreakerListener):
    def __init__(self, breaker: Breaker):
        self.breaker = breaker

    def state_change(self, cb, old_state, new_state) -> None:
        old = old_state.name if old_state is not None else None
        if not getattr(cb, "causing", False) or old == new_state.name:
            return
        last_error = self.breaker.last_error if new_state.name == STATE_OPEN else ""
        log = logger.warning if new_state.name == STATE_OPEN else logger.info
        log(
            "breaker %s: %s -> %s%s",
            self.breaker.name,
            old,
            new_state.name,
            f" after {last_error}" if last_error else "",
            extra={"breaker": self.breaker.name, "from_state": old, "to_state": new_state.name},
        )
        counters.increment("breaker_transitions_total", breaker=self.breaker.name, to=new_state.name)
        _record(
            {
                "breaker": self.breaker.name,
                "from_state": old or "",
                "to_state": new_state.name,
                "at": datetime.now(UTC),
                "last_error": last_error,
                "storage": self.breaker.storage_mode,
                "process": _PROCESS,
                "request_id": get_request_id() or "",
            }
        )


# --- the breaker callers use ----------------------------------------------------------------------


class Breaker:
    """One named circuit breaker; get it with ``get_breaker(name)``."""

    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.config = config
        self.max_retry_after = float(config["max_retry_after"])
        self.last_error = ""
        excluded: list = [is_caller_error]
        excluded += [import_string(path) if isinstance(path, str) else path for path in config.get("exclude", ())]
        self._storage = SharedStorage(
            breaker=name,
            client=_shared_redis(),
            namespace=f"{settings.CIRCUIT_BREAKER_KEY_PREFIX}:{name}",
            retry_seconds=settings.CIRCUIT_BREAKER_REDIS_RETRY_SECONDS,
        )
        self._cb = _PlatformCircuitBreaker(
            fail_max=int(config["fail_max"]),
            reset_timeout=float(config["reset_timeout"]),
            success_threshold=int(config["success_threshold"]),
            exclude=excluded,
            listeners=[_TransitionListener(self)],
            state_storage=self._storage,
            name=name,
            # The call that trips the breaker failed for a real reason: let its caller see it.
            throw_new_error_on_trip=False,
        )

    def __repr__(self) -> str:
        return f"<Breaker {self.name} {self.state}>"

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` as stored (an open breaker past its timeout stays
        ``open`` until the next call tries it)."""
        with self._cb._lock:
            return self._cb.state.name

    @property
    def storage_mode(self) -> str:
        return self._storage.mode

    @property
    def fail_counter(self) -> int:
        return self._cb.fail_counter

    def _retry_after(self) -> int | None:
        opened_at = self._storage.opened_at
        if opened_at is None:
            return None
        reopen = opened_at + timedelta(seconds=self._cb.reset_timeout)
        return max(1, math.ceil((reopen - datetime.now(UTC)).total_seconds()))

    def _before_call(self) -> None:
        with self._cb._lock:
            state = self._cb.state  # re-reads the shared state
            if state.name != STATE_OPEN:
                return
            opened_at = self._storage.opened_at
            if opened_at and datetime.now(UTC) < opened_at + timedelta(seconds=self._cb.reset_timeout):
                counters.increment("breaker_rejections_total", breaker=self.name)
                raise CircuitOpen(self.name, retry_after=self._retry_after())
            self._cb.half_open()

    # After the call, the state object read by _before_call judges the outcome (as pybreaker's own
    # call does): re-reading the shared state would cost a Redis round trip per call.
    def _after_success(self) -> None:
        with self._cb._lock:
            self._cb._state._handle_success()

    def _after_failure(self, exc: BaseException) -> None:
        if isinstance(exc, _NEUTRAL) or not isinstance(exc, Exception):
            return  # cancellation and shutdown say nothing about the upstream
        with self._cb._lock:
            if self._cb.is_system_error(exc):
                self.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
            try:
                # Counts the failure and opens the breaker when due (pybreaker's own rules). With
                # throw_new_error_on_trip=False, a trip re-raises ``exc``, which the caller raises anyway.
                self._cb._state._handle_error(exc, reraise=False)
            except BaseException as raised:
                if raised is not exc:
                    raise
            hint = retry_after_hint(exc) if self._cb.is_system_error(exc) else None
            if hint:
                self._hold_open(hint)

    def _hold_open(self, seconds: float) -> None:
        """Keep the breaker open for ``seconds`` (bounded), as the upstream's Retry-After asked."""
        seconds = min(seconds, self.max_retry_after)
        if self._cb.state.name != STATE_OPEN:
            self._cb.open()
        # Open means "until opened_at + reset_timeout": shift opened_at so that lands at now + seconds.
        until = datetime.now(UTC) + timedelta(seconds=seconds - self._cb.reset_timeout)
        current = self._storage.opened_at
        if current is None or until > current:
            self._storage.opened_at = until

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through the breaker; raises ``CircuitOpen`` while it is open."""
        self._before_call()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._after_failure(exc)
            raise
        self._after_success()
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` through the breaker; failures raised inside the await count."""
        self._before_call()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._after_failure(exc)
            raise
        self._after_success()
        return result

    def reset(self) -> None:
        """Close the breaker and clear its counters (admin action, tests)."""
        with self._cb._lock:
            self._cb.close()
            self._storage.reset_counter()


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
