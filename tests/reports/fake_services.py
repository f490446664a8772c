"""Stand-in services for the job mechanism's tests (registered as jobs by a fixture)."""

from __future__ import annotations

import threading

from django.core.cache import cache
from django.db import OperationalError

CALLS_KEY = "tests:fake-service-calls"


def _count_call() -> int:
    cache.add(CALLS_KEY, 0, 600)
    return cache.incr(CALLS_KEY)


def calls() -> int:
    return cache.get(CALLS_KEY, 0)


def succeed(*, now):
    _count_call()
    return {"rows_affected": 3, "as_of": now}


def per_day(*, day, source_id=None):
    _count_call()
    return {"rows": 1, "day": day, "source_id": source_id}


def fail(*, now):
    _count_call()
    raise ValueError("the seeded data is inconsistent")


def flaky(*, now):
    """Fails with a dropped database connection on its first call, succeeds afterwards."""
    if _count_call() == 1:
        raise OperationalError("server closed the connection unexpectedly")
    return 7


# Set by the test once it has seen the run in progress; bounded so a broken test cannot hang.
release = threading.Event()


def blocking(*, now):
    """Holds its run open (and its lock taken) until the test releases it."""
    _count_call()
    release.wait(timeout=20)
    return 1
