"""Refused requests: a budget of 401/403 answers per caller, and one audit event per caller, path and minute."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import denials
from audit.models import AuditEvent
from tests.accounts.conftest import UnreachableCache

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.urls")]

PROBE = "/api/v1/test/probe"
ME = "/api/v1/auth/me"
BUDGET = 30  # RATE_LIMIT_AUTH_DENIED's default, per minute
# The real scheduler (tests/conftest.py keeps every test's flushes off the broker).
SCHEDULE_ON_THE_BROKER = denials._schedule_flush


@pytest.fixture(autouse=True)
def _frozen_clock():
    """Every request of a test in one rate-limit window and one tally minute (else the counts split)."""
    with time_machine.travel(timezone.now().replace(second=10), tick=False):
        yield


def denial_events():
    return list(AuditEvent.objects.filter(action="auth.permission_denied").order_by("occurred_at"))


def test_refusals_past_the_budget_become_429_with_retry_after(auth_client):
    client = auth_client("agent")
    responses = [client.get(PROBE) for _ in range(BUDGET + 5)]
    assert [r.status_code for r in responses] == [403] * BUDGET + [429] * 5
    last = responses[-1]
    assert last.json()["error"]["code"] == "rate_limited" and 0 < int(last["Retry-After"]) <= 60


def test_the_budget_is_per_caller(auth_client):
    flooder, other = auth_client("agent"), auth_client("agent")
    for _ in range(BUDGET + 1):
        flooder.get(PROBE)
    assert other.get(PROBE).status_code == 403


def test_the_budget_follows_the_setting(auth_client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth.denied": "2/m"}
    client = auth_client("agent")
    assert [client.get(PROBE).status_code for _ in range(3)] == [403, 403, 429]


def test_bogus_api_keys_from_one_address_run_out_of_401s():
    client = APIClient(REMOTE_ADDR="10.40.0.1")
    statuses = [client.get(ME, HTTP_AUTHORIZATION=f"Api-Key apk_bogus{n}.secret").status_code for n in range(50)]
    assert statuses == [401] * BUDGET + [429] * (50 - BUDGET)
    assert APIClient(REMOTE_ADDR="10.40.0.2").get(ME, HTTP_AUTHORIZATION="Api-Key apk_x.y").status_code == 401


def test_a_flood_writes_one_event_with_the_count(auth_client, flush_denials):
    client = auth_client("agent")
    for _ in range(200):
        client.get(PROBE)
    assert not denial_events()  # nothing before the minute's flush
    assert flush_denials() == 1
    (event,) = denial_events()
    assert event.details["count"] == 200
    assert (event.actor_id, event.resource_id, event.success) == (client.user.pk, PROBE, False)
    assert event.details["required"] == ["Requires('accounts.view_user')"]


def test_each_caller_path_and_minute_gets_its_own_event(auth_client, flush_denials):
    first, second = auth_client("agent"), auth_client("agent")
    start = timezone.now().replace(second=10)
    with time_machine.travel(start, tick=False):
        first.get(PROBE)
        first.get(PROBE)
        second.get(PROBE)
        first.get("/api/v1/auth/me?x=1")  # allowed: not a refusal
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        first.get(PROBE)
    assert flush_denials() == 3
    counts = sorted((event.actor_id == first.user.pk, event.details["count"]) for event in denial_events())
    assert counts == [(False, 1), (True, 1), (True, 2)]


def test_a_flush_that_runs_twice_stores_the_event_once(auth_client, monkeypatch):
    scheduled = []
    monkeypatch.setattr(
        denials, "_schedule_flush", lambda bucket, description, countdown: scheduled.append((bucket, countdown))
    )
    auth_client("agent").get(PROBE)
    ((bucket, countdown),) = scheduled
    assert 0 < countdown <= 65  # just after the minute ends
    assert denials.denials_flush(bucket=bucket) is True
    assert denials.denials_flush(bucket=bucket) is False
    assert len(denial_events()) == 1


def test_a_refusal_is_audited_at_once_when_the_tally_cache_is_down(auth_client, monkeypatch):
    monkeypatch.setattr(denials, "cache", UnreachableCache())
    assert auth_client("agent").get(PROBE).status_code == 403
    (event,) = denial_events()
    assert event.details["count"] == 1


def test_a_refusal_is_audited_at_once_when_the_flush_cannot_be_scheduled(auth_client, monkeypatch):
    from accounts.tasks import denials_flush_task

    def broker_down(**kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(denials, "_schedule_flush", SCHEDULE_ON_THE_BROKER)
    monkeypatch.setattr(denials_flush_task, "apply_async", broker_down)
    client = auth_client("agent")
    assert [client.get(PROBE).status_code for _ in range(2)] == [403, 403]
    # Each refusal of the outage is its own event: the second is not dropped as a duplicate.
    events = denial_events()
    assert len(events) == 2
    assert [event.details["count"] for event in events] == [1, 1]


@pytest.mark.urls("agentplatform.urls")  # the project's handler403
def test_admin_pages_share_the_budget(user_factory, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth.denied": "2/m"}
    client = Client()
    client.force_login(user_factory(role="analyst"))
    url = "/admin/accounts/user/add/"  # analysts may not add users
    statuses = [client.get(url).status_code for _ in range(3)]
    assert statuses == [403, 403, 429]
