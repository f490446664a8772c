import pytest
from django.conf import settings
from django.core.cache import cache

pytestmark = pytest.mark.skipif(
    not settings.CACHES["default"]["BACKEND"].endswith("agentplatform.cache.RedisCache"), reason="needs Redis"
)


def test_the_redis_client_is_built_once_per_pool_and_reused():
    backend = cache._cache
    first = backend.get_client(write=True)
    assert backend.get_client(write=True) is first
    assert backend.get_client(write=False) is first  # one server: reads and writes share the pool


def test_the_reused_client_still_reads_and_writes():
    cache.set("reuse-probe", {"n": 1}, 30)
    assert cache.get("reuse-probe") == {"n": 1}
    assert cache.add("reuse-counter", 0, 30)
    assert cache.incr("reuse-counter", delta=2) == 2
    assert cache.get("reuse-counter") == 2
