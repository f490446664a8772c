"""``/metrics`` in the Prometheus text format, rendered from shared state at scrape time.

Nothing here is per-process: request counters and latency buckets, platform counters (rate-limit
fallbacks, breaker rejections...) are cumulative hashes in the shared store that every process
flushes into; queue lengths and host figures come from the latest ``SystemSnapshot``; process
memory from the heartbeats. Whichever gunicorn worker answers a scrape, it renders the same
numbers, so several workers (or hosts) never make counters jump back and forth.

Other apps add gauges with ``register_gauge("audit_buffer_depth", "help", provider)``; the
provider returns a number, or an iterable of ``(labels dict, number)``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from agentplatform.client_ip import is_trusted_proxy, normalise_ip
from agentplatform.errors import DependencyUnavailable
from monitoring.models import ProcessHeartbeat
from monitoring.recorder import HTTP_COUNTERS_KEY, HTTP_LATENCY_BUCKETS, PLATFORM_COUNTERS_KEY
from monitoring.selectors import latest_snapshot
from monitoring.store import get_store

logger = logging.getLogger(__name__)

PREFIX = "agentplatform_"
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")

GaugeProvider = Callable[[], float | Iterable[tuple[dict[str, str], float]]]
_gauges: dict[str, tuple[str, GaugeProvider]] = {}


def register_gauge(name: str, documentation: str, provider: GaugeProvider) -> None:
    """Adds a gauge read at every scrape (exported as ``agentplatform_<name>``)."""
    _gauges[metric_name(name)] = (documentation, provider)


def metric_name(name: str) -> str:
    name = _INVALID_NAME_CHARS.sub("_", name)
    return name if name.startswith(PREFIX) else PREFIX + name


def _http_families(store) -> Iterable:
    requests = CounterMetricFamily(
        PREFIX + "http_requests",
        "HTTP requests by route, method and status class.",
        labels=["method", "route", "status_class"],
    )
    latency = HistogramMetricFamily(
        PREFIX + "http_request_duration_seconds",
        "HTTP request latency by route and method.",
        labels=["method", "route"],
    )
    per_route: dict[tuple[str, str], dict[str, int]] = {}
    for field, value in sorted(store.read(HTTP_COUNTERS_KEY).items()):
        method, route, part = field.split("\t", 2)
        if part.endswith("xx"):
            requests.add_metric([method, route, part], value)
        else:
            per_route.setdefault((method, route), {})[part] = value
    for (method, route), parts in per_route.items():
        cumulative, buckets = 0, []
        for position, bound in enumerate(HTTP_LATENCY_BUCKETS):
            cumulative += parts.get(f"b{position}", 0)
            buckets.append((repr(bound), cumulative))
        cumulative += parts.get(f"b{len(HTTP_LATENCY_BUCKETS)}", 0)
        buckets.append(("+Inf", cumulative))
        latency.add_metric([method, route], buckets, sum_value=parts.get("s", 0) / 1_000_000)
    yield requests
    yield latency


def _counter_families(store) -> Iterable:
    families: dict[str, tuple[list[str], CounterMetricFamily]] = {}
    for field, value in sorted(store.read(PLATFORM_COUNTERS_KEY).items()):
        try:
            name, labels = json.loads(field)
        except ValueError:
            continue
        name = metric_name(name.removesuffix("_total"))
        label_names = [label for label, _ in labels]
        if name not in families:
            families[name] = (label_names, CounterMetricFamily(name, f"Platform counter {name}.", labels=label_names))
        known_labels, family = families[name]
        if known_labels != label_names:  # one counter incremented with two label sets: keep the first
            logger.warning("metrics: counter %s has inconsistent labels %s", name, label_names)
            continue
        family.add_metric([label_value for _, label_value in labels], value)
    yield from (family for _, family in families.values())


def _breaker_families() -> Iterable:
    from agentplatform import breakers
    from agentplatform.models import BreakerTransition

    names = set(getattr(settings, "CIRCUIT_BREAKERS", {})) - {"default"}
    since = timezone.now() - timedelta(days=settings.MONITORING_HOUR_RETENTION_DAYS)
    names.update(BreakerTransition.objects.filter(at__gte=since).values_list("breaker", flat=True).distinct())
    family = GaugeMetricFamily(
        PREFIX + "breaker_state", "1 for the current state of each circuit breaker.", labels=["breaker", "state"]
    )
    for name in sorted(names):
        try:
            current = breakers.get_breaker(name).state
        except Exception:  # a breaker that cannot be read is reported as nothing, not as closed
            logger.warning("metrics: could not read breaker %s", name, exc_info=True)
            continue
        for state in (breakers.STATE_CLOSED, breakers.STATE_OPEN, breakers.STATE_HALF_OPEN):
            family.add_metric([name, state], 1.0 if current == state else 0.0)
    yield family


def _system_families() -> Iterable:
    snapshot = latest_snapshot()
    if snapshot is not None:
        queues = GaugeMetricFamily(
            PREFIX + "celery_queue_length", "Messages waiting per Celery queue.", labels=["queue"]
        )
        for queue, length in sorted(snapshot.queues.items()):
            queues.add_metric([queue], length)
        yield queues
        yield GaugeMetricFamily(
            PREFIX + "host_cpu_percent", "Host CPU use at the last snapshot.", value=snapshot.cpu_percent
        )
        yield GaugeMetricFamily(
            PREFIX + "host_memory_used_bytes",
            "Host memory in use at the last snapshot.",
            value=snapshot.memory_used_bytes,
        )
        yield GaugeMetricFamily(
            PREFIX + "host_disk_used_ratio", "Disk use (0-1) at the last snapshot.", value=snapshot.disk_percent / 100
        )
        yield GaugeMetricFamily(
            PREFIX + "system_snapshot_timestamp_seconds",
            "When the last system snapshot was taken (Unix time).",
            value=snapshot.taken_at.timestamp(),
        )
    fresh = timezone.now() - timedelta(seconds=3 * settings.MONITORING_HEARTBEAT_SECONDS)
    rss = GaugeMetricFamily(
        PREFIX + "process_resident_memory_bytes",
        "RSS of each web and worker process.",
        labels=["kind", "hostname", "pid"],
    )
    for beat in ProcessHeartbeat.objects.filter(seen_at__gte=fresh).order_by("name"):
        rss.add_metric([beat.kind, beat.hostname, str(beat.pid)], beat.rss_bytes)
    yield rss


def _registered_families() -> Iterable:
    for name, (documentation, provider) in sorted(_gauges.items()):
        try:
            value = provider()
        except Exception:  # one broken provider must not take the whole scrape down
            logger.warning("metrics: gauge %s failed", name, exc_info=True)
            continue
        if isinstance(value, int | float):
            yield GaugeMetricFamily(name, documentation, value=value)
            continue
        items = list(value)
        labels = sorted(items[0][0]) if items else []
        family = GaugeMetricFamily(name, documentation, labels=labels)
        for label_values, number in items:
            family.add_metric([str(label_values[label]) for label in labels], number)
        yield family


class SharedStateCollector:
    def collect(self):
        store = get_store()
        yield from _http_families(store)
        yield from _counter_families(store)
        yield from _breaker_families()
        yield from _system_families()
        yield from _registered_families()


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SharedStateCollector())
    return generate_latest(registry)


def _is_loopback(request) -> bool:
    peer = normalise_ip(request.META.get("REMOTE_ADDR"))
    if peer is None or is_trusted_proxy(peer):
        return False  # a proxy on this host forwards outsiders: its loopback address says nothing
    return ipaddress.ip_address(peer).is_loopback


def metrics_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return _is_loopback(request)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics_view(request):
    if not metrics_allowed(request):
        response = HttpResponse(
            "Forbidden: send Authorization: Bearer <METRICS_TOKEN>.\n", status=403, content_type="text/plain"
        )
        if settings.METRICS_TOKEN:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    try:
        body = render_metrics()
    except DependencyUnavailable as exc:
        # Prometheus records the failed scrape (up == 0); a partial page would hide the outage.
        return HttpResponse(f"{exc.message}\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
