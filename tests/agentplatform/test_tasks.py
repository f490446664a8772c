from django.core.cache import cache

from agentplatform.probes import HEARTBEAT_CACHE_KEY
from agentplatform.tasks import heartbeat


def test_heartbeat_records_its_time_for_readyz(client):
    stamp = heartbeat.apply().get()
    assert cache.get(HEARTBEAT_CACHE_KEY) == stamp
    info = client.get("/readyz").json()["info"]["beat_heartbeat"]
    assert info["last_seen"] == stamp
