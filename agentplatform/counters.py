"""Operational counters (rate-limit fallbacks, breaker rejections...) that /metrics exports.

``increment`` never raises and never blocks on the network: it is called on failure paths, often
exactly when Redis is down. ``value``/``snapshot`` read this process's counts; sinks added with
``add_sink`` (the monitoring app's buffer, flushed to the shared store) make them cross-process.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
_sinks: list[Callable[[str, int, tuple[tuple[str, str], ...]], None]] = []


def add_sink(sink: Callable[[str, int, tuple[tuple[str, str], ...]], None]) -> None:
    """Also send every increment to ``sink(name, amount, labels)`` (must not block or raise)."""
    if sink not in _sinks:
        _sinks.append(sink)


def increment(name: str, amount: int = 1, **labels: str) -> None:
    key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
    with _lock:
        _counts[key] += amount
    for sink in _sinks:
        try:
            sink(name, amount, key[1])
        except Exception:  # a counter must never break the failure path that reports it
            logger.exception("counter sink failed")


def value(name: str, **labels: str) -> int:
    key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
    with _lock:
        return _counts[key]


def snapshot() -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
    with _lock:
        return dict(_counts)
