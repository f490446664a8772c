"""Django's Redis cache backend with one reusable client per connection pool.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` object on every cache call;
with redis-py 6+ that constructor copies every response callback into a case-insensitive dict, a
cost the profile of the resolve path (several cache calls per request) showed. A ``redis.Redis``
instance is thread-safe (it checks connections out of its pool per command), so one per pool
serves every thread of the process. The client class reaches Django internals, so it lives in
``agentplatform.compat``.
"""

from __future__ import annotations

from django.core.cache.backends import redis as django_redis

from agentplatform import compat


class RedisCache(django_redis.RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with a reused client (see module docstring)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        compat.use_cache_client_class(self, compat.PooledClientRedisCacheClient)
