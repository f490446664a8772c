"""Provider health: /readyz info, the admin page, the /metrics samples."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from enrichment import health
from tests.enrichment.conftest import Reply


@pytest.fixture
def search_up(upstream, settings):
    settings.SEARCH_BASE_URL = upstream.url
    return upstream


def test_health_reports_configuration_breaker_and_last_hour_figures(agent_client, search_up):
    search_up.route("/search", Reply(body={"results": []}))
    agent_client.post("/api/v1/enrichment/context", {"web": {"queries": ["a"]}}, format="json")
    search_up.route("/search", Reply(500, {"error": "boom"}))
    agent_client.post("/api/v1/enrichment/context", {"web": {"queries": ["b"]}}, format="json")

    report = health.provider_health()
    search = report["search.primary"]
    assert (search["configured"], search["breaker"], search["calls_last_hour"]) == (True, "closed", 2)
    assert search["error_rate_last_hour"] == 0.5
    assert search["p95_ms_last_hour"] > 0
    assert search["last_success"] and search["last_failure"]
    assert search["last_error"] == "upstream_unavailable"
    assert report["supadata"]["configured"] is False
    assert "key" not in repr(report["supadata"]).replace("key_set", "")


def test_readyz_carries_provider_health_as_information(client, db, settings):
    settings.METRICS_TOKEN = "providers-test-metrics-token-with-entropy-Qw8"
    response = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    body = response.json()
    assert set(body["info"]["enrichment_providers"]) >= {"web", "search.primary", "supadata", "youtube", "mcp"}


def test_metric_samples_expose_breaker_and_configuration(db):
    samples = {(s.name, s.labels["provider"]): s.value for s in health.metric_samples()}
    assert samples[("enrichment_provider_configured", "web")] == 1.0
    assert samples[("enrichment_provider_breaker_open", "web")] == 0.0


def test_admin_page_lists_every_provider(client, db):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "admin-password-1", role="admin")
    client.force_login(admin)
    response = client.get("/admin/enrichment/datasource/provider-health/")
    assert response.status_code == 200
    content = response.content.decode()
    for name in ("web", "search.primary", "supadata", "youtube", "mcp"):
        assert f"<td>{name}</td>" in content


def test_gauges_register_with_a_metrics_registry(db):
    registered = {}
    health.register_gauges(lambda name, documentation, provider: registered.setdefault(name, provider))
    assert set(registered) == set(health.GAUGES)
    configured = dict((labels["provider"], value) for labels, value in registered["enrichment_provider_configured"]())
    assert configured["web"] == 1.0 and configured["supadata"] == 0.0


def test_provider_calls_are_timed_through_the_monitoring_hook(agent_client, upstream, settings):
    settings.SEARCH_BASE_URL = upstream.url
    upstream.route("/search", Reply(body={"results": []}))
    observed = []

    class Recorder:
        def observe(self, operation, duration_ms, *, success=True, at=None):
            observed.append((operation, success))

    from unittest import mock

    with mock.patch("monitoring.recorder.recorder", Recorder()):
        agent_client.post("/api/v1/enrichment/context", {"web": {"queries": ["a"]}}, format="json")
    assert observed == [("enrichment.search.primary", True)]


def test_system_checks_reject_a_malformed_allow_list(settings):
    from enrichment.checks import enrichment_settings_check

    settings.ENRICHMENT_ALLOWED_PRIVATE = ["not-an-entry"]
    settings.MCP_SERVERS = {"x": "ftp://x.example/"}
    assert {problem.id for problem in enrichment_settings_check(None)} == {"enrichment.E001", "enrichment.E003"}
