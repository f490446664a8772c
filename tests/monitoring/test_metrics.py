"""/metrics: Prometheus text from shared state, parsed by prometheus_client; access rules."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentplatform import counters
from monitoring import metrics
from monitoring.recorder import recorder
from monitoring.services import system_snapshot

pytestmark = pytest.mark.django_db


def _scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def _samples(family) -> dict:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value for sample in family.samples}


def test_metrics_expose_request_counts_and_latency_histograms(store_name, client):
    for _ in range(3):
        client.get("/healthz")
    recorder.flush()
    families = _scrape(client)

    requests = _samples(families["agentplatform_http_requests"])
    key = ("agentplatform_http_requests_total", (("method", "GET"), ("route", "healthz"), ("status_class", "2xx")))
    assert requests[key] == 3
    latency = _samples(families["agentplatform_http_request_duration_seconds"])
    labels = (("le", "+Inf"), ("method", "GET"), ("route", "healthz"))
    assert latency[("agentplatform_http_request_duration_seconds_bucket", labels)] == 3
    assert latency[("agentplatform_http_request_duration_seconds_count", labels[1:])] == 3


def test_metrics_expose_platform_counters_such_as_rate_limit_fallbacks(store_name, client):
    counters.increment("ratelimit_fallback_total", group="audit.write")
    counters.increment("ratelimit_fallback_total", group="audit.write")
    recorder.flush()
    family = _scrape(client)["agentplatform_ratelimit_fallback"]
    assert _samples(family)[("agentplatform_ratelimit_fallback_total", (("group", "audit.write"),))] == 2


def test_metrics_expose_queue_lengths_and_process_memory(store_name, client):
    recorder.heartbeat()
    system_snapshot()
    families = _scrape(client)
    assert "celery" in {s.labels["queue"] for s in families["agentplatform_celery_queue_length"].samples}
    rss = families["agentplatform_process_resident_memory_bytes"].samples
    assert rss and rss[0].labels["kind"] == "web" and rss[0].value > 0


def test_registered_gauges_are_exported(client):
    metrics.register_gauge("test_depth", "A depth.", lambda: 42)
    metrics.register_gauge("test_labelled", "Labelled gauge.", lambda: [({"shard": "a"}, 1.0), ({"shard": "b"}, 2.0)])
    try:
        families = _scrape(client)
    finally:
        metrics._gauges.pop("agentplatform_test_depth")
        metrics._gauges.pop("agentplatform_test_labelled")
    assert families["agentplatform_test_depth"].samples[0].value == 42
    assert {s.labels["shard"]: s.value for s in families["agentplatform_test_labelled"].samples} == {"a": 1.0, "b": 2.0}


def test_a_failing_gauge_does_not_break_the_scrape(client):
    metrics.register_gauge("broken", "Broken.", lambda: 1 / 0)
    try:
        families = _scrape(client)
    finally:
        metrics._gauges.pop("agentplatform_broken")
    assert "agentplatform_broken" not in families


def test_metrics_with_a_token_require_the_bearer_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_metrics_without_a_token_answer_loopback_only(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


def test_metrics_without_a_token_refuse_proxied_requests(client, settings):
    settings.METRICS_TOKEN = ""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = ("127.0.0.1/32",)  # a proxy on this host: its loopback address says nothing
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_metrics_answer_503_when_the_store_is_down(client, settings):
    settings.MONITORING_STORE = "redis"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/metrics")
    assert response.status_code == 503


def test_the_audit_backlog_of_unsealed_events_is_exported(client):
    from audit.services import audit_log
    from audit.writer import audit_buffer

    def unsealed() -> float:
        return _scrape(client)["agentplatform_audit_unsealed_events"].samples[0].value

    before = unsealed()
    with audit_buffer():
        audit_log(actor=None, action="test.happened", durable=True)
    assert unsealed() == before + 1
