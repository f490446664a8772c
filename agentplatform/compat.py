"""Every private attribute of Django, DRF or redis-py the project relies on, in one place.

Each one is here because a public API does not exist for what it does, and each has a test in
``tests/agentplatform/test_compat.py`` that fails by name when a library upgrade moves it. Nothing
outside this module reaches a library's underscore attribute. Not counted as private: Django's
``Model._meta`` (the documented Options API) and ``Model._state.adding``/``.db`` (documented in the
model instance reference, e.g. for ``from_db``).

What each one is, and why no public API will do:

- ``HttpRequest._stream`` (``request_body_stream``, ``replace_request_body_stream``): the body-size
  limit must wrap the stream DRF's parsers read, before any parser runs; Django sets it in
  ``WSGIRequest.__init__`` and has no setter. Every API request passes here.
- ``RedisCache._cache.get_client`` (``redis_client``): the rate limiter's Lua script (every API
  request) and the exposure buffer's pipelines need the raw client on the cache's own pool; a
  second pool would double the connections and the configuration.
- ModelBackend's ``user._perm_cache`` (``cached_permissions``, ``prime_permissions``): an API-key
  request rebuilds its user from a cached snapshot, and priming the backend's cache makes every
  permission check free of queries; reading it spares instantiating every backend per check.
- ``RedisCacheClient._client``, ``._get_connection_pool[_index]`` and ``RedisCache._class``
  (``PooledClientRedisCacheClient``, ``use_cache_client_class``): Django builds a new
  ``redis.Redis`` per cache call (agentplatform/cache.py says what that costs); the subclass keeps
  one per pool, and Django has no option to choose the client class.
- ``Atomic._from_testcase`` (``in_application_atomic``): tells a TestCase's wrapping transaction
  from the application's, as Django's own durable-atomic check does.
- ``AbstractBaseUser._password`` (``password_set_unsaved``): the only sign, in ``post_save``, that
  this save stored a new password (a login's re-hash clears it; the public alternative, a password
  validator's ``password_changed`` hook, runs after ``post_save`` without the save's actor).
  ``forget_unsaved_password`` clears it as Django's own re-hash-on-login setter does.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends import redis as django_redis

# --- django.http.HttpRequest ----------------------------------------------------------------------


def request_body_stream(request) -> Any:
    """The stream ``request.read()`` (and so DRF's parsers) read the body from."""
    return request._stream


def replace_request_body_stream(request, stream) -> None:
    """Make ``request.read()``/``readline()`` read from ``stream`` instead."""
    request._stream = stream


# --- django.core.cache.backends.redis.RedisCache --------------------------------------------------


def redis_client(cache, key: str | None = None, *, write: bool = True):
    """The redis-py client behind Django's ``RedisCache`` (its own pool), or None for another backend.

    ``key`` is the full (already made) cache key: Django's client API takes it to pick a server.
    """
    backend = getattr(cache, "_cache", None)
    get_client = getattr(backend, "get_client", None)
    if get_client is None:
        return None
    return get_client(key, write=write)


class PooledClientRedisCacheClient(django_redis.RedisCacheClient):
    """Django's Redis cache client, handing out one ``redis.Redis`` per connection pool."""

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


def use_cache_client_class(cache, client_class) -> None:
    """Make a ``RedisCache`` (in its ``__init__``, before first use) build ``client_class``."""
    cache._class = client_class


# --- django.contrib.auth.backends.ModelBackend -----------------------------------------------------


def cached_permissions(user) -> set[str] | None:
    """``"app_label.codename"`` strings ModelBackend has cached on ``user``; None when not cached yet."""
    return getattr(user, "_perm_cache", None)


def prime_permissions(user, permissions) -> None:
    """Give ``user`` the permission cache ModelBackend would build, so ``has_perm`` asks no query."""
    user._perm_cache = set(permissions)


# --- django.db.transaction.Atomic -----------------------------------------------------------------


def in_application_atomic(connection) -> bool:
    """Whether an ``atomic`` block other than a TestCase's wrapping ones is open on ``connection``."""
    if not connection.in_atomic_block:
        return False
    return any(not block._from_testcase for block in connection.atomic_blocks)


# --- django.contrib.auth.base_user.AbstractBaseUser -----------------------------------------------


def password_set_unsaved(user) -> bool:
    """True from ``set_password()`` until the end of the save that stores it (``post_save`` sees it)."""
    return getattr(user, "_password", None) is not None


def forget_unsaved_password(user) -> None:
    """What Django's re-hash-on-login setter does after ``set_password``: this is no password change."""
    user._password = None
