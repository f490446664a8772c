"""Liveness and readiness probes.

``/healthz`` answers as long as the process can serve a request (no dependency is touched, so a
database outage never makes an orchestrator kill healthy web processes). ``/readyz`` checks the
database, the cache and the broker concurrently, each bounded by ``READINESS_TIMEOUT``, and answers
503 naming whichever is down.

A check that hangs (a database that accepts the connection and never answers) cannot be
interrupted from outside its thread. So each check runs at most once at a time: while one is
still running, the next probes report that dependency down ("still running") without starting
another, and the probe pool never fills with stuck threads, however often an orchestrator asks.

Anyone may ask ``/readyz`` (orchestrators send no credentials), so anonymous callers get only
``{"status", "checks": {name: "ok" | "down"}}``. The details (latencies, connection errors with
hosts and ports, the apps' information sections: audit chain head, provider hosts, MCP server
names...) need ``Authorization: Bearer <METRICS_TOKEN>`` or a staff session.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from agentplatform.celery import app as celery_app

logger = logging.getLogger(__name__)

# Seconds each dependency check may take before it is reported down.
READINESS_TIMEOUT = 2.0
HEARTBEAT_CACHE_KEY = "platform:beat-heartbeat"

# name -> (the check's future, when it started): at most one running instance of each check, each
# in a daemon thread of its own (a pool's threads are joined at exit: a hung check would hold up
# the process's shutdown).
_running: dict[str, tuple[Future, float]] = {}
_running_lock = threading.Lock()

# Extra informational sections (provider health, heartbeat...) registered by apps; they never
# fail readiness.
_info_sections: dict[str, Callable[[], object]] = {}


def register_info(name: str, provider: Callable[[], object]) -> None:
    _info_sections[name] = provider


def check_database() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # Checks run in pool threads: don't leave a connection open per thread.
        connection.close()


def check_cache() -> None:
    marker = str(time.time())
    cache.set("platform:readyz", marker, 30)
    if cache.get("platform:readyz") != marker:
        raise RuntimeError("cache did not return the value just written")


def check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=READINESS_TIMEOUT)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
}


def _timed(check: Callable[[], None]) -> tuple[bool, float, str | None]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure means "down"; the reason is reported and logged
        return False, (time.perf_counter() - started) * 1000, f"{exc.__class__.__name__}: {exc}"[:300]
    return True, (time.perf_counter() - started) * 1000, None


def _start(name: str, check: Callable[[], None]) -> Future | float:
    """The check's future, started now; or, when its previous run has not returned, its age in seconds."""
    with _running_lock:
        running = _running.get(name)
        if running is not None and not running[0].done():
            return time.monotonic() - running[1]
        future: Future = Future()
        _running[name] = (future, time.monotonic())

    def run() -> None:
        future.set_result(_timed(check))

    threading.Thread(target=run, name=f"readyz-{name}", daemon=True).start()
    return future


def readiness() -> tuple[bool, dict]:
    started = {name: _start(name, check) for name, check in CHECKS.items()}
    deadline = time.monotonic() + READINESS_TIMEOUT
    report: dict[str, dict] = {}
    for name, future in started.items():
        if not isinstance(future, Future):
            ok, latency_ms = False, future * 1000
            error = f"the previous check is still running after {future:.1f} s; none started"
        else:
            try:
                ok, latency_ms, error = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                ok, latency_ms, error = False, READINESS_TIMEOUT * 1000, f"no answer within {READINESS_TIMEOUT:g} s"
        report[name] = {"status": "up" if ok else "down", "latency_ms": round(latency_ms, 2)}
        if error:
            report[name]["error"] = error
            logger.warning("readiness: %s is down: %s", name, error)
    all_ok = all(item["status"] == "up" for item in report.values())
    return all_ok, report


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def may_see_details(request) -> bool:
    """The metrics token as a bearer token, or a staff session."""
    token = settings.METRICS_TOKEN
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    try:
        return bool(request.user.is_staff)
    except DatabaseError:
        # The session lives in the database, which may be the very thing that is down.
        return False


@never_cache
@require_GET
def readyz(request):
    ok, dependencies = readiness()
    status = "ready" if ok else "unavailable"
    checks = {name: "ok" if item["status"] == "up" else "down" for name, item in dependencies.items()}
    body: dict = {"status": status, "checks": checks}
    if not may_see_details(request):
        return JsonResponse(body, status=200 if ok else 503)
    body["dependencies"] = dependencies
    info = {}
    for name, provider in _info_sections.items():
        try:
            info[name] = provider()
        except Exception as exc:  # informational only: a failing section must not break the probe
            info[name] = {"error": f"{exc.__class__.__name__}"}
    if info:
        body["info"] = info
    if not ok:
        down = [name for name, item in dependencies.items() if item["status"] != "up"]
        body["error"] = {
            "code": "dependency_unavailable",
            "message": f"Unavailable: {', '.join(down)}.",
            "details": {"down": down},
            "request_id": getattr(request, "request_id", None),
        }
    return JsonResponse(body, status=200 if ok else 503)


def _heartbeat_info() -> dict:
    last = cache.get(HEARTBEAT_CACHE_KEY)
    if last is None:
        return {"last_seen": None}
    return {"last_seen": last, "age_seconds": round(time.time() - last, 1)}


register_info("beat_heartbeat", _heartbeat_info)
