from django.core.cache import cache

from agentplatform.health import HEARTBEAT_CACHE_KEY
from agentplatform.scheduling.tasks import JOB_TASKS


def test_heartbeat_records_its_time_for_readyz(client):
    heartbeat = JOB_TASKS["platform_heartbeat"]
    assert heartbeat.name == "platform.heartbeat"  # the task name installed schedules already use
    stamp = heartbeat.apply().get()
    assert cache.get(HEARTBEAT_CACHE_KEY) == stamp
    info = client.get("/readyz").json()["info"]["beat_heartbeat"]
    assert info["last_seen"] == stamp
