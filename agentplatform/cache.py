"""Django's Redis cache backend with one reusable client per connection pool.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` object on every cache call;
with redis-py 6+ that constructor copies every response callback into a case-insensitive dict,
a cost the resolve path (several cache calls per request) paid on each call (profile in
bench/README.md, "Figures behind the code"). A ``redis.Redis`` instance is thread-safe (it checks
connections out of its pool per command), so one per pool serves every thread of the process.
"""

from __future__ import annotations

import threading

from django.core.cache.backends import redis as django_redis


class PooledClientRedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}
        self._clients_lock = threading.Lock()

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            with self._clients_lock:
                client = self._clients.get(index)
                if client is None:
                    client = self._client(connection_pool=self._get_connection_pool(write))
                    self._clients[index] = client
        return client


class RedisCache(django_redis.RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with a reused client (see module docstring)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = PooledClientRedisCacheClient
