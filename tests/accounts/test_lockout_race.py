"""Parallel wrong passwords against real PostgreSQL: no more than the limit reach a password check."""

from __future__ import annotations

import threading

import pytest
import time_machine
from django.db import connection, connections
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import lockout
from accounts.models import LoginFailureCount
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_URL = "/api/v1/auth/token"
LIMIT = 5
ATTEMPTS = 20


@pytest.fixture
def counted_password_checks(monkeypatch):
    """Counts the password checks ModelBackend really performs (the real check still runs)."""
    checks: list[str] = []
    guard = threading.Lock()
    original = lockout._password_backend.authenticate

    def counting(request, username=None, password=None, **kwargs):
        with guard:
            checks.append(username)
        return original(request, username=username, password=password, **kwargs)

    monkeypatch.setattr(lockout._password_backend, "authenticate", counting)
    return checks


@pytest.fixture(autouse=True)
def generous_rate_limit(settings):
    # The per-target rate limit would refuse some of the 20 on its own: leave the lockout alone on duty.
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth.token": "1000/m"}
    settings.LOGIN_FAILURE_LIMIT = LIMIT


def in_parallel(attempt, count: int = ATTEMPTS) -> list[int]:
    """Runs ``attempt()`` in ``count`` threads released together; returns their status codes."""
    start = threading.Barrier(count)
    statuses: list[int] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def run():
        try:
            start.wait()
            status = attempt()
            with guard:
                statuses.append(status)
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return statuses


def test_parallel_wrong_passwords_get_no_more_password_checks_than_the_limit(user_factory, counted_password_checks):
    person = user_factory(role="analyst")

    def attempt() -> int:
        body = {"username": person.username, "password": "wrong-password"}
        return APIClient().post(TOKEN_URL, body, format="json", REMOTE_ADDR="10.0.0.1").status_code

    statuses = in_parallel(attempt)

    assert len(counted_password_checks) == LIMIT
    assert sorted(statuses) == [401] * (LIMIT - 1) + [429] * (ATTEMPTS - LIMIT + 1)
    row = LoginFailureCount.objects.get(scope=LoginFailureCount.Scope.USERNAME, label=person.username)
    assert row.failures == LIMIT and row.locked_until is not None
    # Locked for the right password too.
    right = {"username": person.username, "password": TEST_PASSWORD}
    assert APIClient().post(TOKEN_URL, right, format="json", REMOTE_ADDR="10.0.0.2").status_code == 429
    connections.close_all()


def test_parallel_wrong_passwords_at_the_admin_login_get_no_more_checks_than_the_limit(
    user_factory, counted_password_checks
):
    admin = user_factory(role="admin")

    def attempt() -> int:
        body = {"username": admin.username, "password": "wrong-password"}
        return Client(REMOTE_ADDR="10.0.5.5").post("/admin/login/", body).status_code

    statuses = in_parallel(attempt)

    assert len(counted_password_checks) == LIMIT
    assert sorted(statuses) == [200] * (LIMIT - 1) + [429] * (ATTEMPTS - LIMIT + 1)


def test_the_admin_login_has_the_per_username_rate_limit_of_the_token_endpoint(user_factory, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth.token": "3/m"}
    admin = user_factory(role="admin")
    statuses = []
    with time_machine.travel(timezone.now(), tick=False):  # one rate-limit window
        for number in range(4):
            client = Client(REMOTE_ADDR=f"10.0.7.{number}")
            body = {"username": admin.username, "password": TEST_PASSWORD}
            statuses.append(client.post("/admin/login/?next=/admin/", body).status_code)
    assert statuses == [302, 302, 302, 429]


def test_a_successful_login_gives_its_reserved_attempt_back(user_factory):
    person = user_factory(role="analyst")
    client = APIClient()
    for _ in range(LIMIT - 1):
        assert client.post(TOKEN_URL, {"username": person.username, "password": "x"}, format="json").status_code == 401
    right = {"username": person.username, "password": TEST_PASSWORD}
    assert client.post(TOKEN_URL, right, format="json").status_code == 200  # the 5th attempt, the right one
    row = LoginFailureCount.objects.get(scope=LoginFailureCount.Scope.USERNAME, label=person.username)
    assert row.failures == LIMIT - 1 and row.locked_until is None
    assert client.post(TOKEN_URL, right, format="json").status_code == 200


def test_logins_refused_by_the_rate_limit_are_not_each_audited(user_factory, settings, audit_events):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth.token": "2/m"}
    person = user_factory(role="analyst")
    body = {"username": person.username, "password": "x"}
    with time_machine.travel(timezone.now(), tick=False):  # one rate-limit window
        statuses = [
            APIClient().post(TOKEN_URL, body, format="json", REMOTE_ADDR=f"10.0.8.{n}").status_code for n in range(5)
        ]
    assert statuses == [401, 401, 429, 429, 429]
    assert len(audit_events.of("auth.login_failed")) == 2


def test_the_per_username_rate_limit_holds_with_the_lockout_switched_off(user_factory, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth.token": "2/m"}
    settings.LOGIN_LOCKOUT_ENABLED = False
    person = user_factory(role="analyst")
    right = {"username": person.username, "password": TEST_PASSWORD}
    with time_machine.travel(timezone.now(), tick=False):  # one rate-limit window
        statuses = [
            APIClient().post(TOKEN_URL, right, format="json", REMOTE_ADDR=f"10.0.9.{n}").status_code for n in range(3)
        ]
    assert statuses == [200, 200, 429]
