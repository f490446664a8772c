"""Provider health: configured or not, breaker state, last success and failure, error rate and
p95 latency over the last hour.

Outcomes are kept per process in a bounded window (the error rate and p95 describe what this
process saw; /metrics is scraped per process and Prometheus aggregates), while the last success
and failure times live in the shared cache so every process reports the same ones. Three readers:
``/readyz`` (``register_info``), the admin page and ``metric_samples()`` for ``/metrics``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from agentplatform import counters
from agentplatform.breakers import get_breaker

WINDOW_SECONDS = 3600
# Outcomes kept per provider: bounds memory whatever the traffic (p95 over the newest ones).
MAX_SAMPLES = 5000
OK, ERROR, REJECTED, UNAVAILABLE = "ok", "error", "rejected", "unavailable"
_LAST_KEY = "enrichment:health:last:{}"
_LAST_TTL = 7 * 24 * 3600


@dataclass(frozen=True)
class CallOutcome:
    provider: str
    outcome: str  # ok | error (transient, counted) | rejected (permanent) | unavailable (breaker open)
    elapsed_ms: float
    at: float  # time.time()
    code: str = ""


_lock = threading.Lock()
_samples: dict[str, deque[CallOutcome]] = {}


def track(outcome: CallOutcome) -> None:
    """The timing hook: each provider call is one ``enrichment.<provider>`` operation in monitoring.

    Outcomes are known only after the breaker and chain logic, so this records the measured
    duration (``recorder.observe``, what ``monitoring.track`` does on exit) instead of wrapping the
    call in ``monitoring.track``. Permanent refusals count as successes: the provider worked.
    """
    counters.increment("enrichment_provider_calls_total", provider=outcome.provider, outcome=outcome.outcome)
    from monitoring.recorder import recorder  # imported late: monitoring's app registry must be ready

    try:
        recorder.observe(
            f"enrichment.{outcome.provider}",
            outcome.elapsed_ms,
            success=outcome.outcome in (OK, REJECTED),
            at=outcome.at,
        )
    except Exception:  # timing must never fail the call it measures
        counters.increment("enrichment_track_errors_total")


def record(outcomes: list[CallOutcome]) -> None:
    """Remember outcomes (in process) and the newest success/failure per provider (shared cache)."""
    if not outcomes:
        return
    latest: dict[str, dict[str, Any]] = {}
    with _lock:
        for item in outcomes:
            _samples.setdefault(item.provider, deque(maxlen=MAX_SAMPLES)).append(item)
    for item in outcomes:
        track(item)
        if item.outcome in (OK, ERROR):
            field = "last_success" if item.outcome == OK else "last_failure"
            entry = latest.setdefault(item.provider, {})
            entry[field] = item.at
            if item.outcome == ERROR:
                entry["last_error"] = item.code
    if latest:
        keys = {_LAST_KEY.format(name): name for name in latest}
        try:
            stored = cache.get_many(list(keys))
            merged = {key: {**stored.get(key, {}), **latest[name]} for key, name in keys.items()}
            cache.set_many(merged, _LAST_TTL)
        except Exception:  # health bookkeeping must never fail a caller
            counters.increment("enrichment_health_cache_errors_total")


def reset() -> None:
    """Forget this process's samples (tests)."""
    with _lock:
        _samples.clear()


def _window(name: str, now: float) -> list[CallOutcome]:
    with _lock:
        return [item for item in _samples.get(name, ()) if now - item.at <= WINDOW_SECONDS]


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 2)


def provider_health() -> dict[str, dict[str, Any]]:
    """Health of every provider, by name."""
    from enrichment.registry import all_providers

    now = time.time()
    providers = all_providers()
    try:
        last = cache.get_many([_LAST_KEY.format(p.name) for p in providers])
    except Exception:  # informational: report without the shared part
        last = {}
    report: dict[str, dict[str, Any]] = {}
    for provider in providers:
        window = _window(provider.name, now)
        counted = [item for item in window if item.outcome in (OK, ERROR)]
        errors = sum(1 for item in counted if item.outcome == ERROR)
        shared = last.get(_LAST_KEY.format(provider.name), {})
        try:
            breaker_state = get_breaker(provider.breaker_name).state
        except Exception:  # Redis down: the breaker falls back, never the report
            breaker_state = "unknown"
        report[provider.name] = {
            "kind": provider.kind,
            "configured": provider.is_configured(),
            "breaker": breaker_state,
            "last_success": _iso(shared.get("last_success")),
            "last_failure": _iso(shared.get("last_failure")),
            "last_error": shared.get("last_error"),
            "calls_last_hour": len(window),
            "error_rate_last_hour": round(errors / len(counted), 4) if counted else None,
            "p95_ms_last_hour": _p95([item.elapsed_ms for item in counted]),
            **provider.describe(),
        }
    return report


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    kind: str  # gauge
    help: str


_BREAKER_VALUE = {"closed": 0.0, "half-open": 0.5, "open": 1.0}


def metric_samples() -> list[Sample]:
    """Provider health as Prometheus gauges, for the monitoring app's /metrics."""
    samples: list[Sample] = []
    for name, info in provider_health().items():
        labels = {"provider": name, "kind": info["kind"]}
        samples.append(
            Sample("enrichment_provider_configured", labels, float(info["configured"]), "gauge", "1 if configured")
        )
        samples.append(
            Sample(
                "enrichment_provider_breaker_open",
                labels,
                _BREAKER_VALUE.get(info["breaker"], math.nan),
                "gauge",
                "breaker state: 0 closed, 0.5 half-open, 1 open",
            )
        )
        samples.append(
            Sample(
                "enrichment_provider_calls_last_hour",
                labels,
                float(info["calls_last_hour"]),
                "gauge",
                "provider calls seen by this process in the last hour",
            )
        )
        if info["error_rate_last_hour"] is not None:
            samples.append(
                Sample(
                    "enrichment_provider_error_rate_last_hour",
                    labels,
                    info["error_rate_last_hour"],
                    "gauge",
                    "share of transient failures in the last hour",
                )
            )
        if info["p95_ms_last_hour"] is not None:
            samples.append(
                Sample(
                    "enrichment_provider_p95_ms_last_hour",
                    labels,
                    info["p95_ms_last_hour"],
                    "gauge",
                    "95th percentile call latency in the last hour, milliseconds",
                )
            )
    return samples


def register_gauges(register) -> None:
    """Hand the health gauges to a ``register(name, documentation, provider)`` (monitoring's
    ``register_gauge``); each provider returns ``[(labels, value), ...]``."""

    def family(metric: str):
        def provider() -> list[tuple[dict[str, str], float]]:
            return [(sample.labels, sample.value) for sample in metric_samples() if sample.name == metric]

        return provider

    for metric, documentation in GAUGES.items():
        register(metric, documentation, family(metric))


GAUGES = {
    "enrichment_provider_configured": "1 if the enrichment provider is configured",
    "enrichment_provider_breaker_open": "Enrichment provider breaker: 0 closed, 0.5 half-open, 1 open",
    "enrichment_provider_calls_last_hour": "Enrichment provider calls seen by this process in the last hour",
    "enrichment_provider_error_rate_last_hour": "Share of transient enrichment provider failures, last hour",
    "enrichment_provider_p95_ms_last_hour": "95th percentile enrichment provider latency (ms), last hour",
}
