"""Operational counters (rate-limit fallbacks, breaker rejections...) that /metrics exports.

``increment`` never raises and never blocks on the network: it is called on failure paths, often
exactly when Redis is down. The monitoring app reads ``snapshot()`` and is responsible for merging
counts across processes.
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()


def increment(name: str, amount: int = 1, **labels: str) -> None:
    key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
    with _lock:
        _counts[key] += amount


def value(name: str, **labels: str) -> int:
    key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
    with _lock:
        return _counts[key]


def snapshot() -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
    with _lock:
        return dict(_counts)
