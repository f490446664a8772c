"""Fixtures of the monitoring tests: users holding its permissions, a clean buffer, both stores."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission

from monitoring.recorder import recorder

REDIS_AVAILABLE = bool(settings.REDIS_URL)
STORES = ["database", pytest.param("redis", marks=pytest.mark.skipif(not REDIS_AVAILABLE, reason="needs Redis"))]


def make_user(django_user_model, username: str, *codenames: str, **extra):
    user = django_user_model.objects.create_user(username=username, password="unused-password-123", **extra)
    for codename in codenames:
        app_label, name = codename.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=name))
    return django_user_model.objects.get(pk=user.pk)  # fresh instance: no stale permission cache


@pytest.fixture(autouse=True)
def _clean_buffer():
    with recorder._lock:
        recorder._pending.clear()
    yield
    with recorder._lock:
        recorder._pending.clear()


@pytest.fixture(params=STORES)
def store_name(request, settings):
    settings.MONITORING_STORE = request.param
    return request.param


@pytest.fixture
def agent(django_user_model):
    return make_user(django_user_model, "agent-1", "monitoring.push_metrics", role="agent")


@pytest.fixture
def analyst(django_user_model):
    return make_user(django_user_model, "analyst-1", "monitoring.view_metrics", role="analyst")


@pytest.fixture
def agent_client(api_client, agent):
    api_client.force_authenticate(agent)
    return api_client


@pytest.fixture
def analyst_client(api_client, analyst):
    api_client.force_authenticate(analyst)
    return api_client
