from django.core.cache import cache

from agentplatform.probes import HEARTBEAT_CACHE_KEY
from agentplatform.scheduling.tasks import JOB_TASKS


def test_heartbeat_records_its_time_for_readyz(client, settings):
    settings.METRICS_TOKEN = "heartbeat-test-metrics-token-with-entropy-Qw8"
    heartbeat = JOB_TASKS["platform_heartbeat"]
    assert heartbeat.name == "platform.heartbeat"  # the task name installed schedules already use
    stamp = heartbeat.apply().get()
    assert cache.get(HEARTBEAT_CACHE_KEY) == stamp
    details = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}").json()
    info = details["info"]["beat_heartbeat"]
    assert info["last_seen"] == stamp
