"""The per-process buffer: observations are aggregated in memory and flushed in one pipeline.

A request pays for a dict update under a lock. A daemon thread (started lazily, restarted after a
fork) flushes every ``MONITORING_FLUSH_INTERVAL_SECONDS`` and writes this process's heartbeat; on
a clean exit ``atexit`` flushes the rest. A process that crashes loses at most one flush interval
of its own observations; a failed flush is dropped and counted, never retried into unbounded memory.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection

from monitoring.sketch import MAX_INDEX, MIN_INDEX, bucket_index
from monitoring.store import get_store, minute_key

logger = logging.getLogger(__name__)

# Seconds: upper bounds of the Prometheus latency buckets of HTTP requests.
HTTP_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_COUNTERS_KEY = "c|http"
PLATFORM_COUNTERS_KEY = "c|counters"
# Field names made once: the hot path formats no strings (bucket_index is clamped to this range).
_BUCKET_NAMES = {index: str(index) for index in range(MIN_INDEX, MAX_INDEX + 1)}
_LE_NAMES = [f"b{position}" for position in range(len(HTTP_LATENCY_BUCKETS) + 1)]


class Recorder:
    def __init__(self) -> None:
        self._reset()
        self.process_kind = "web"
        self.started_at = datetime.now(UTC)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._pending: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        # Field names of the current minute's requests, built once per (method, route, status).
        self._names_minute = 0
        self._names: dict[tuple[str, str, int], tuple[str, str, str, str]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_heartbeat = 0.0
        self.dropped_flushes = 0

    # --- recording (the hot path) ---------------------------------------------------------------
    def observe(self, operation: str, duration_ms: float, *, success: bool = True, at: float | None = None) -> None:
        """Counts one timed operation into its open minute."""
        at = time.time() if at is None else at
        key = minute_key(int(at // 60) * 60, operation)
        bucket = _BUCKET_NAMES[bucket_index(duration_ms)]
        duration_us = round(duration_ms * 1000)
        with self._lock:
            fields = self._pending[key]
            fields["n"] += 1
            if not success:
                fields["e"] += 1
            fields["s"] += duration_us
            fields[bucket] += 1

    def observe_request(self, *, method: str, route: str, status: int, duration_ms: float) -> None:
        """Counts one HTTP request: its minute histogram plus the cumulative Prometheus counters."""
        minute = int(time.time() // 60) * 60
        bucket = _BUCKET_NAMES[bucket_index(duration_ms)]
        le = _LE_NAMES[bisect.bisect_left(HTTP_LATENCY_BUCKETS, duration_ms / 1000.0)]
        duration_us = round(duration_ms * 1000)
        with self._lock:
            if minute != self._names_minute:
                self._names_minute, self._names = minute, {}
            names = self._names.get((method, route, status))
            if names is None:
                prefix = f"{method}\t{route}\t"
                names = self._names[(method, route, status)] = (
                    minute_key(minute, f"http {method} {route}"),
                    f"{prefix}{status // 100}xx",
                    prefix,
                    f"{prefix}s",
                )
            key, status_field, prefix, sum_field = names
            fields = self._pending[key]
            fields["n"] += 1
            if status >= 500:
                fields["e"] += 1
            fields["s"] += duration_us
            fields[bucket] += 1
            http = self._pending[HTTP_COUNTERS_KEY]
            http[status_field] += 1
            http[prefix + le] += 1
            http[sum_field] += duration_us

    def count(self, key: str, field: str, amount: int = 1) -> None:
        with self._lock:
            self._pending[key][field] += amount

    # --- flushing --------------------------------------------------------------------------------
    def flush(self) -> int:
        """Writes everything buffered to the shared store; returns the number of hashes written."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        if not pending:
            return 0
        try:
            get_store().add(pending)
        except Exception:  # Redis or the database is down: drop this interval, keep serving
            self.dropped_flushes += 1
            logger.warning("monitoring: dropped a flush of %d hashes", len(pending), exc_info=True)
            return 0
        return len(pending)

    def ensure_started(self) -> None:
        """Starts the flusher thread of this process once (no-op when background flushing is off)."""
        if self._thread is not None or not settings.MONITORING_BACKGROUND_FLUSH:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="monitoring-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        interval = settings.MONITORING_FLUSH_INTERVAL_SECONDS
        stop = self._stop
        while not stop.wait(interval):
            self.flush()
            if time.monotonic() - self._last_heartbeat >= settings.MONITORING_HEARTBEAT_SECONDS:
                try:
                    self.heartbeat()
                except Exception:  # the database is down: try again next interval
                    logger.warning("monitoring: heartbeat failed", exc_info=True)
                finally:
                    # This thread owns a connection of its own: never leave it open between beats.
                    connection.close()

    def heartbeat(self) -> None:
        """Records this process's resident memory (read by the system snapshot job)."""
        from monitoring.services import process_heartbeat_record

        self._last_heartbeat = time.monotonic()
        process_heartbeat_record(kind=self.process_kind, started_at=self.started_at)

    def _after_fork(self) -> None:
        # Buffered counts belong to the parent; the child starts clean with its own thread.
        self._reset()
        self.started_at = datetime.now(UTC)


recorder = Recorder()
os.register_at_fork(after_in_child=recorder._after_fork)
atexit.register(recorder.flush)
