"""Fixtures of the accounts tests."""

from __future__ import annotations

import pytest
from django.core.cache import caches


class AuditRecorder(list):
    """Every ``audit.services.audit_log`` call of the test, as the keyword arguments it got."""

    def actions(self) -> list[str]:
        return [event["action"] for event in self]

    def of(self, action: str) -> list[dict]:
        return [event for event in self if event["action"] == action]


@pytest.fixture
def audit_events(monkeypatch) -> AuditRecorder:
    from audit import services

    recorder = AuditRecorder()
    original = services.audit_log

    def record(**kwargs):
        recorder.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(services, "audit_log", record)
    return recorder


@pytest.fixture
def locmem_cache(settings):
    """A local-memory cache, whose expiry follows time-machine (Redis keeps its own clock)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ttl"}}
    caches["default"].clear()
    yield caches["default"]
    caches["default"].clear()


@pytest.fixture
def person(user_factory):
    return user_factory(role="analyst")


class UnreachableCache:
    """Stands in for the accounts app's cache only (rate limits keep theirs): every call fails."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("connection refused")

        return fail


@pytest.fixture
def accounts_cache_down(monkeypatch):
    """Every cache call of the accounts app fails, as when Redis is unreachable."""
    from accounts import cache as accounts_cache

    monkeypatch.setattr(accounts_cache, "cache", UnreachableCache())
