"""Brute-force lockout on the token endpoint and the admin login (django-axes)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token"
LIMIT = 5


def login(client, username: str, password: str, *, ip: str = "10.0.0.1", **extra):
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json", REMOTE_ADDR=ip, **extra)


def fail_until_locked(client, username: str, *, ip: str = "10.0.0.1"):
    statuses = [login(client, username, "wrong-password", ip=ip).status_code for _ in range(LIMIT)]
    assert statuses == [401] * (LIMIT - 1) + [429]


def test_fifth_failure_locks_the_username_with_retry_after_and_envelope(api_client, person):
    fail_until_locked(api_client, person.username)
    response = login(api_client, person.username, "wrong-password")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "login_locked"
    assert 0 < int(response["Retry-After"]) <= 15 * 60


def test_lock_holds_even_with_the_right_password(api_client, person):
    fail_until_locked(api_client, person.username)
    assert login(api_client, person.username, TEST_PASSWORD).status_code == 429


def test_lock_lifts_after_the_cool_down(api_client, person):
    fail_until_locked(api_client, person.username)
    with time_machine.travel(timezone.now() + timedelta(minutes=15, seconds=5)):
        assert login(api_client, person.username, TEST_PASSWORD).status_code == 200


def test_lock_still_holds_just_before_the_cool_down_ends(api_client, person):
    fail_until_locked(api_client, person.username)
    with time_machine.travel(timezone.now() + timedelta(minutes=14)):
        response = login(api_client, person.username, TEST_PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) <= 61


def test_username_lock_applies_from_every_ip(api_client, person):
    for number in range(LIMIT):
        login(api_client, person.username, "wrong-password", ip=f"10.0.1.{number}")
    assert login(api_client, person.username, TEST_PASSWORD, ip="10.0.2.1").status_code == 429


def test_ip_lock_applies_to_every_username(api_client, person, user_factory):
    for number in range(LIMIT):
        login(api_client, f"guess-{number}", "wrong-password", ip="10.0.3.3")
    assert login(api_client, person.username, TEST_PASSWORD, ip="10.0.3.3").status_code == 429
    assert login(api_client, person.username, TEST_PASSWORD, ip="10.0.3.4").status_code == 200


def test_forwarded_for_header_does_not_escape_the_ip_lock(api_client, person):
    # No trusted proxy in tests: X-Forwarded-For is the client's own claim.
    for number in range(LIMIT):
        login(api_client, f"guess-{number}", "wrong-password", ip="10.0.4.4", HTTP_X_FORWARDED_FOR=f"1.2.3.{number}")
    assert login(api_client, person.username, TEST_PASSWORD, ip="10.0.4.4").status_code == 429


def test_failures_spread_wider_than_the_window_do_not_lock(api_client, person, settings):
    settings.LOGIN_FAILURE_WINDOW_MINUTES = 5
    start = timezone.now()
    for number in range(LIMIT):
        with time_machine.travel(start + timedelta(minutes=6 * number)):
            login(api_client, person.username, "wrong-password")
    with time_machine.travel(start + timedelta(minutes=6 * LIMIT)):
        assert login(api_client, person.username, TEST_PASSWORD).status_code == 200


def test_failure_limit_follows_the_setting(api_client, person, settings):
    settings.AXES_FAILURE_LIMIT = 2
    login(api_client, person.username, "wrong-password")
    assert login(api_client, person.username, "wrong-password").status_code == 429


def test_lockout_is_audited(api_client, person, audit_events):
    fail_until_locked(api_client, person.username)
    assert audit_events.of("auth.locked_out")
    assert len(audit_events.of("auth.login_failed")) == LIMIT


def test_admin_login_locks_too_and_holds_with_the_right_password(user_factory):
    admin = user_factory(role="admin")
    client = Client(REMOTE_ADDR="10.0.5.5")
    for _ in range(LIMIT - 1):
        response = client.post("/admin/login/", {"username": admin.username, "password": "wrong-password"})
        assert response.status_code == 200  # the form again, with an error
    assert client.post("/admin/login/", {"username": admin.username, "password": "wrong"}).status_code == 429
    response = client.post("/admin/login/", {"username": admin.username, "password": TEST_PASSWORD})
    assert response.status_code == 429
    assert "Retry-After" in response
    assert b"Too many failed logins" in response.content


def test_admin_login_works_for_staff(user_factory):
    admin = user_factory(role="admin")
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": admin.username, "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_admin_login_is_audited_but_force_login_is_not(user_factory, audit_events):
    admin = user_factory(role="admin")
    Client().force_login(admin)
    assert not audit_events.of("auth.logged_in")
    Client().post("/admin/login/", {"username": admin.username, "password": TEST_PASSWORD})
    (event,) = audit_events.of("auth.logged_in")
    assert event["actor"] == admin and event["durable"] is True


def test_token_endpoint_rate_limits_one_username_across_ips(api_client, person, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth.token": "3/m"}
    statuses = [login(api_client, person.username, TEST_PASSWORD, ip=f"10.0.6.{n}").status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]
