"""Background delivery: bounded in-memory queues, batches, retries that never double-count.

Each kind of event (exposures, results, scores, audit events, metrics) has a ``deque`` bounded at
``max_queue`` items: while the platform is unreachable for long, the oldest items are dropped and
counted (``health()["dropped"]``) rather than growing the agent's memory without bound. One
thread takes up to ``batch_size`` items of each queue every ``flush_interval`` seconds, or at once
when a queue reaches ``batch_size``, and posts them to the kind's batch endpoint.

Every item carries an id made on the client (exposures: their (experiment, user) key), so a batch
re-sent after a lost answer is counted as duplicates by the platform, never stored twice. A batch
is retried, with the same ids, after a connection error, a timeout, a 429 (after its
``Retry-After``) or a 5xx, with exponential backoff and full jitter (AWS's "Exponential Backoff
and Jitter"), until it is delivered or the client is closed. Any other 4xx is a bug in the
caller: logged once per endpoint, status and error code with the envelope's message, and dropped.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

logger = logging.getLogger("agentops_client")

RETRY_BASE_SECONDS = 0.5


@dataclass
class Kind:
    """One queue: where its batches go and how a queued item becomes a JSON row."""

    name: str
    # The batch endpoint of an item (results go to their experiment's endpoint).
    path: Callable[[Any], str]
    body_key: str
    row: Callable[[Any], dict[str, Any]]
    queue: deque = field(default_factory=deque)
    dropped: int = 0
    delivered: int = 0
    duplicates: int = 0
    rejected: int = 0


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class Outbox:
    """The queues and the thread that empties them."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        kinds: Iterable[Kind],
        batch_size: int,
        max_queue: int,
        flush_interval: float,
        max_retry_delay: float,
        max_retry_after: float,
        on_contact: Callable[[bool, str | None], None],
    ) -> None:
        self.http = http
        self.kinds = {kind.name: kind for kind in kinds}
        for kind in self.kinds.values():
            kind.queue = deque(maxlen=max_queue)
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.flush_interval = flush_interval
        self.max_retry_delay = max_retry_delay
        self.max_retry_after = max_retry_after
        self.on_contact = on_contact  # (reached the platform?, error) for health()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.idle = threading.Condition()
        self.in_flight = 0
        self.logged: set[tuple] = set()
        self.retries = 0
        self.thread = threading.Thread(target=self._run, name="agentops-delivery", daemon=True)
        self.thread.start()

    # --- the caller's side (no I/O, no locks) ----------------------------------------------------
    def put(self, kind: Kind, item: Any) -> None:
        queue = kind.queue
        if len(queue) == self.max_queue:
            kind.dropped += 1  # the deque drops its oldest item on append
        queue.append(item)
        if len(queue) >= self.batch_size:
            self.wake.set()

    def pending(self) -> int:
        return sum(len(kind.queue) for kind in self.kinds.values()) + self.in_flight

    def flush(self, timeout: float | None) -> bool:
        """Wait until every queued item was delivered or dropped; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wake.set()
        with self.idle:
            while self.pending():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.wake.set()
                self.idle.wait(0.05 if remaining is None else min(0.05, remaining))
        return True

    def stop(self, timeout: float) -> None:
        """Deliver what is queued within ``timeout``, then stop the thread (what is left is dropped)."""
        self.flush(timeout)
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=max(0.1, timeout))
        for kind in self.kinds.values():
            if kind.queue:
                kind.dropped += len(kind.queue)
                logger.warning("agentops: %d %s not delivered before close", len(kind.queue), kind.name)
                kind.queue.clear()

    # --- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(self.flush_interval)
            self.wake.clear()
            try:
                self._drain()
            except Exception:  # the thread must outlive any bug: the agent keeps running
                logger.exception("agentops: delivery failed unexpectedly")
            with self.idle:
                self.idle.notify_all()

    def _drain(self) -> None:
        for kind in self.kinds.values():
            while kind.queue and not self.stopping.is_set():
                queue = kind.queue
                # Counted in flight before leaving the queue, so flush() never sees them nowhere.
                self.in_flight = min(len(queue), self.batch_size)
                batch = []
                try:
                    while len(batch) < self.in_flight:
                        batch.append(queue.popleft())
                except IndexError:  # the producer's drop-oldest took some meanwhile
                    pass
                try:
                    by_path: dict[str, list[dict[str, Any]]] = {}
                    for item in batch:
                        by_path.setdefault(kind.path(item), []).append(kind.row(item))
                    for path, rows in by_path.items():
                        self._deliver(kind, path, rows)
                finally:
                    self.in_flight = 0

    def _deliver(self, kind: Kind, path: str, rows: list[dict[str, Any]]) -> None:
        """POST one batch until it is answered (or the client stops); the same rows every attempt."""
        body = json.dumps({kind.body_key: rows}, separators=(",", ":"), ensure_ascii=False).encode()
        attempt = 0
        while True:
            delay: float | None = None
            try:
                response = self.http.post(path, content=body, headers={"Content-Type": "application/json"})
            except httpx.HTTPError as error:  # connection refused, reset, timeout
                self.on_contact(False, f"{type(error).__name__}: {error}")
            else:
                status = response.status_code
                if status == 200:
                    self.on_contact(True, None)
                    self._count(kind, path, response)
                    return
                if status == 429 or status >= 500:
                    self.on_contact(status == 429, f"HTTP {status} from {path}")
                    if status == 429 or status == 503:
                        after = retry_after_seconds(response.headers.get("Retry-After"))
                        if after is not None:
                            delay = min(after, self.max_retry_after)
                else:
                    self.on_contact(True, None)
                    self._log_refusal(kind, path, response, len(rows))
                    return
            if self.stopping.is_set():
                self._drop_in_flight(kind, rows)
                return
            attempt += 1
            self.retries += 1
            if delay is None:
                delay = random.uniform(0, min(self.max_retry_delay, RETRY_BASE_SECONDS * 2**attempt))
            if self.stopping.wait(delay):
                self._drop_in_flight(kind, rows)
                return

    def _drop_in_flight(self, kind: Kind, rows: list) -> None:
        """A batch still being retried when the client closes: dropped, and said so like the queued ones."""
        kind.dropped += len(rows)
        logger.warning("agentops: %d %s not delivered before close (the platform did not answer)", len(rows), kind.name)

    def _count(self, kind: Kind, path: str, response: httpx.Response) -> None:
        try:
            answer = response.json()
            kind.delivered += int(answer.get("accepted", 0))
            kind.duplicates += int(answer.get("duplicates", 0))
            rejected = answer.get("rejected") or []
        except (ValueError, AttributeError, TypeError):
            return
        kind.rejected += len(rejected)
        for rejection in rejected[:50]:
            for field_name, errors in (rejection.get("errors") or {}).items():
                for error in errors:
                    code = error.get("code")
                    if (path, field_name, code) not in self.logged:
                        self.logged.add((path, field_name, code))
                        logger.warning(
                            "agentops: %s refused a %s row: %s: %s (logged once per code)",
                            path,
                            kind.name,
                            field_name,
                            error.get("message"),
                        )

    def _log_refusal(self, kind: Kind, path: str, response: httpx.Response, count: int) -> None:
        kind.rejected += count
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        code = error.get("code")
        if (path, response.status_code, code) in self.logged:
            return
        self.logged.add((path, response.status_code, code))
        logger.error(
            "agentops: %s answered %d (%s): %s; %d %s dropped, not retried (logged once)",
            path,
            response.status_code,
            code,
            error.get("message") or response.text[:200],
            count,
            kind.name,
        )
