"""Brute-force lockout on the token endpoint and the admin login, with device tokens (accounts.lockout)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.utils import timezone

from accounts.lockout import DEVICE_COOKIE_NAME, device_token_issue
from accounts.models import LoginFailureCount
from accounts.tokens import token_cleanup
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


def test_a_failure_window_longer_than_the_lockout_still_counts(api_client, person, settings):
    settings.LOGIN_FAILURE_WINDOW_MINUTES = 30
    start = timezone.now()
    statuses = []
    for number in range(LIMIT):
        with time_machine.travel(start + timedelta(minutes=20 * number)):
            statuses.append(login(api_client, person.username, "wrong-password").status_code)
    assert statuses == [401] * (LIMIT - 1) + [429]


def test_failure_limit_follows_the_setting(api_client, person, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    login(api_client, person.username, "wrong-password")
    assert login(api_client, person.username, "wrong-password").status_code == 429


def test_lockout_is_audited_once_per_locked_scope(api_client, person, audit_events):
    fail_until_locked(api_client, person.username)
    events = audit_events.of("auth.lockout")
    assert sorted(event["details"]["scope"] for event in events) == ["ip", "username"]
    assert all(event["severity"] == "warning" and event["durable"] for event in events)
    assert len(audit_events.of("auth.login_failed")) == LIMIT
    login(api_client, person.username, "wrong-password")  # refused while locked: no new lock event
    assert len(audit_events.of("auth.lockout")) == 2


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


# --- device tokens ------------------------------------------------------------------------------


def device_token_of(client, person, *, ip: str = "10.1.0.1") -> str:
    response = login(client, person.username, TEST_PASSWORD, ip=ip)
    assert response.status_code == 200
    return response.json()["device_token"]


def attack(client, username: str, *, failures: int = LIMIT) -> None:
    for number in range(failures):
        login(client, username, "wrong-password", ip=f"10.9.{number // 250}.{number % 250}")


def test_a_successful_login_returns_a_device_token(api_client, person):
    body = login(api_client, person.username, TEST_PASSWORD).json()
    assert set(body) == {"access", "refresh", "device_token"}
    assert body["device_token"] != device_token_of(api_client, person)  # a fresh one every login


def test_a_known_device_gets_in_while_its_username_is_locked_for_everyone_else(api_client, person):
    device = device_token_of(api_client, person)
    attack(api_client, person.username)
    assert login(api_client, person.username, TEST_PASSWORD, ip="10.1.0.2").status_code == 429
    response = login(api_client, person.username, TEST_PASSWORD, ip="10.1.0.2", HTTP_X_DEVICE_TOKEN=device)
    assert response.status_code == 200


def test_failures_with_a_device_token_lock_that_device_only(api_client, person):
    device = device_token_of(api_client, person)
    statuses = [
        login(api_client, person.username, "wrong-password", HTTP_X_DEVICE_TOKEN=device).status_code
        for _ in range(LIMIT)
    ]
    assert statuses == [401] * (LIMIT - 1) + [429]
    response = login(api_client, person.username, TEST_PASSWORD, HTTP_X_DEVICE_TOKEN=device)
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 15 * 60
    # Neither the username nor the address was counted: a login without that token still works.
    assert login(api_client, person.username, TEST_PASSWORD).status_code == 200


def test_a_device_token_of_another_username_is_untrusted(api_client, person, user_factory):
    other = user_factory(role="analyst")
    device = device_token_of(api_client, other)
    attack(api_client, person.username)
    response = login(api_client, person.username, TEST_PASSWORD, ip="10.1.0.3", HTTP_X_DEVICE_TOKEN=device)
    assert response.status_code == 429


@pytest.mark.parametrize(
    "forged",
    [
        "not-a-token",
        signing.dumps({"u": "victim", "n": "abc"}, salt="another-salt"),
        signing.dumps({"u": "victim", "n": "abc"}, key="another-key", salt="accounts.lockout.device-token"),
        "x" * 10_000,
    ],
)
def test_a_forged_device_token_is_untrusted(api_client, user_factory, forged):
    victim = user_factory(role="analyst", username="victim")
    attack(api_client, victim.username)
    response = login(api_client, victim.username, TEST_PASSWORD, ip="10.1.0.4", HTTP_X_DEVICE_TOKEN=forged)
    assert response.status_code == 429


def test_a_device_token_expires_after_device_token_days(api_client, person, settings):
    device = device_token_issue(username=person.username)
    with time_machine.travel(timezone.now() + timedelta(days=settings.DEVICE_TOKEN_DAYS + 1)):
        attack(api_client, person.username)
        response = login(api_client, person.username, TEST_PASSWORD, ip="10.1.0.5", HTTP_X_DEVICE_TOKEN=device)
    assert response.status_code == 429


def test_a_flood_on_the_username_does_not_use_up_a_known_devices_rate_limit(api_client, person, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth.token": "3/m"}
    device = device_token_of(api_client, person, ip="10.1.1.1")
    for number in range(3):
        login(api_client, person.username, "wrong-password", ip=f"10.1.2.{number}")
    assert login(api_client, person.username, TEST_PASSWORD, ip="10.1.2.9").status_code == 429
    response = login(api_client, person.username, TEST_PASSWORD, ip="10.1.3.1", HTTP_X_DEVICE_TOKEN=device)
    assert response.status_code == 200


def test_admin_login_sets_an_http_only_device_cookie(user_factory):
    admin = user_factory(role="admin")
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": admin.username, "password": TEST_PASSWORD})
    cookie = response.cookies[DEVICE_COOKIE_NAME]
    assert cookie.value and cookie["httponly"] and cookie["samesite"] == "Lax"


def test_a_browser_that_logged_in_before_gets_into_the_admin_during_an_attack(user_factory):
    admin = user_factory(role="admin")
    browser = Client(REMOTE_ADDR="10.2.0.1")
    browser.post("/admin/login/", {"username": admin.username, "password": TEST_PASSWORD})
    browser.post("/admin/logout/")  # the session ends; the device cookie stays (Client.logout drops every cookie)
    assert "_auth_user_id" not in browser.session
    for number in range(LIMIT):
        Client(REMOTE_ADDR=f"10.2.1.{number}").post("/admin/login/", {"username": admin.username, "password": "x"})
    stranger = Client(REMOTE_ADDR="10.2.0.1")
    assert stranger.post("/admin/login/", {"username": admin.username, "password": TEST_PASSWORD}).status_code == 429
    response = browser.post("/admin/login/?next=/admin/", {"username": admin.username, "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert browser.get("/admin/").status_code == 200


def test_the_lockout_can_be_switched_off(api_client, person, settings):
    settings.LOGIN_LOCKOUT_ENABLED = False
    attack(api_client, person.username)
    assert login(api_client, person.username, TEST_PASSWORD).status_code == 200
    assert not LoginFailureCount.objects.exists()


def test_cleanup_removes_counters_whose_window_and_lock_are_over(api_client, person):
    login(api_client, person.username, "wrong-password", ip="10.3.0.1")  # counts, no lock
    fail_until_locked(api_client, "someone-else", ip="10.3.0.2")  # locks
    later = timezone.now() + timedelta(minutes=16)
    assert token_cleanup(now=later) == 4  # username and IP counters of both
    assert not LoginFailureCount.objects.exists()


def test_cleanup_keeps_live_locks(api_client, person):
    fail_until_locked(api_client, person.username)
    token_cleanup(now=timezone.now() + timedelta(minutes=1))
    assert LoginFailureCount.objects.filter(locked_until__isnull=False).count() == 2
