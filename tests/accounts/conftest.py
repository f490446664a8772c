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
