"""/readyz says whether the metrics store keeps acknowledged operations through a restart."""

from __future__ import annotations

import pytest

from monitoring.selectors import metrics_store_durability
from tests.reliability.faults import PrivateRedis


@pytest.mark.parametrize("persistent", [True, False], ids=["append-only-file", "no-persistence"])
def test_a_redis_store_reports_whether_its_open_minutes_survive_a_restart(tmp_path, settings, persistent):
    redis = PrivateRedis(tmp_path, persistent=persistent)
    redis.start()
    try:
        settings.MONITORING_STORE = "redis"
        settings.REDIS_URL = redis.url
        report = metrics_store_durability()
    finally:
        redis.stop()
    assert report["store"] == "redis"
    assert report["aof_enabled"] is persistent
    assert report["survives_restart"] is persistent
    assert ("lost_on_restart" in report) is not persistent


@pytest.mark.django_db
def test_readiness_carries_the_report(client, settings):
    settings.MONITORING_STORE = "database"
    settings.METRICS_TOKEN = "store-durability-test-metrics-token-Zx81q"
    info = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}").json()["info"]
    assert info["monitoring_store"] == {"store": "database", "survives_restart": True}
