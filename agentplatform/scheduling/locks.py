"""A lock per job and period, so two workers never run the same job for the same period at once.

``cache.add`` is atomic on Redis (SET NX) and on the embedded file cache close enough for one
machine. The lock expires after the job's hard time limit plus a margin: a worker killed mid-run
(hard limit, OOM, deploy) cannot hold it forever, and a live run cannot outlive it, because the
hard limit kills it first.
"""

from __future__ import annotations

import uuid

from django.core.cache import cache

# Seconds added to the hard time limit before an abandoned lock expires.
LOCK_MARGIN_SECONDS = 60


class JobLock:
    """``owner`` is the Celery task id when there is one: a message redelivered after its worker was
    killed (acks_late + reject_on_worker_lost) carries the same task id, so it takes over the lock
    its dead first delivery left behind instead of being skipped until the lock expires."""

    def __init__(self, *, job: str, period: str, scope: str, ttl_seconds: int, owner: str = ""):
        self.key = f"jobs:lock:{job}:{period}:{scope}"
        self.ttl_seconds = ttl_seconds + LOCK_MARGIN_SECONDS
        self.token = owner or uuid.uuid4().hex
        self.acquired = False

    def acquire(self) -> bool:
        self.acquired = bool(cache.add(self.key, self.token, self.ttl_seconds))
        if not self.acquired and cache.get(self.key) == self.token:
            # Our own task id holds it: an earlier delivery of this very message died mid-run.
            cache.set(self.key, self.token, self.ttl_seconds)
            self.acquired = True
        return self.acquired

    def holder(self) -> str | None:
        return cache.get(self.key)

    def release(self) -> None:
        # Delete only our own lock: if ours expired and another run took the key, leave theirs.
        # (get-then-delete is not atomic; the window is one round trip after an expiry that the
        # hard time limit already makes impossible for a live run.)
        if self.acquired and cache.get(self.key) == self.token:
            cache.delete(self.key)
        self.acquired = False
