"""Security properties across the platform: the role matrix is complete, API keys stay secret,
the admin carries CSRF and clickjacking protection, and production refuses a weak configuration.

(JWT forgery, lockout and SSRF have their own tests in tests/accounts and tests/enrichment.)
"""

from __future__ import annotations

import logging

import pytest
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from agentplatform.checks import check_security_configuration
from tests.accounts.matrix import MATRIX
from tests.conftest import PRODUCTION_ENV, TEST_PASSWORD, run_manage, run_python


def _api_routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            route = prefix + str(pattern.pattern)
            view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
            if route.startswith("api/v1/") and view is not None:
                yield route, view


def _methods(view) -> set[str]:
    names = {"get", "post", "put", "patch", "delete"}
    return {name.upper() for name in names if hasattr(view, name)}


def test_every_api_endpoint_and_method_is_in_the_role_matrix():
    served = {(method, route) for route, view in _api_routes(get_resolver().url_patterns) for method in _methods(view)}
    in_matrix = set()
    for endpoint in MATRIX:
        match = resolve(endpoint.url.split("?")[0])
        in_matrix.add((endpoint.method, match.route))
    # PUT is PATCH's full-body twin on the same view and permission; the matrix lists PATCH.
    missing = {
        (method, route)
        for method, route in served - in_matrix
        if not (method == "PUT" and ("PATCH", route) in in_matrix)
    }
    assert not missing, f"add these to tests/accounts/matrix.py: {sorted(missing)}"
    assert len(served) >= 20


# --- API keys ------------------------------------------------------------------------------------
def test_an_api_key_is_not_stored_in_clear_anywhere_in_the_database(agent_key, auth_client):
    from django.db import connection

    auth_client("agent", user=agent_key.user).get("/api/v1/auth/me")
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            columns = [
                c.name
                for c in connection.introspection.get_table_description(cursor, table)
                if c.type_code in _text_type_codes(connection)
            ]
            for column in columns:
                qn = connection.ops.quote_name
                sql = f"SELECT COUNT(*) FROM {qn(table)} WHERE CAST({qn(column)} AS TEXT) LIKE %s"  # noqa: S608
                cursor.execute(sql, [f"%{agent_key.raw_key}%"])
                assert cursor.fetchone()[0] == 0, f"{table}.{column} holds the raw API key"


def _text_type_codes(connection) -> set:
    if connection.vendor == "postgresql":
        return {25, 1043, 114, 3802, 1042}  # text, varchar, json, jsonb, char
    return {"text", "varchar", "TEXT", "varchar(255)"} | {None}


def test_an_api_key_never_appears_in_logs_or_in_responses(agent_key, client, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = []
    for path, method, body in [
        ("/api/v1/auth/me", "get", None),
        ("/api/v1/audit/events", "get", None),
        ("/api/v1/audit/events", "post", {"events": [{"action": "agent.tested"}]}),
        ("/api/v1/experiments/", "get", None),  # 403
        ("/api/v1/no-such-endpoint", "get", None),  # 404
        ("/api/v1/prompts/resolve", "post", {"user_id": "\x00"}),  # 400
    ]:
        call = getattr(client, method)
        response = call(path, body, content_type="application/json", **agent_key) if body else call(path, **agent_key)
        bodies.append(response.content)
    wrong = client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Api-Key {agent_key.raw_key}x")
    assert wrong.status_code == 401
    bodies.append(wrong.content)
    secret = agent_key.raw_key.encode()
    assert not any(secret in body for body in bodies)
    # The key's secret part (after any prefix) is what matters: no 12-character slice of it leaks.
    for record in caplog.records:
        text = record.getMessage() + str(record.__dict__)
        assert agent_key.raw_key not in text
        assert agent_key.raw_key[-16:] not in text


# --- admin ---------------------------------------------------------------------------------------
def test_admin_pages_forbid_framing(client):
    response = client.get("/admin/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_admin_login_refuses_a_post_without_a_csrf_token(user_factory):
    user_factory(role="admin", username="csrf-admin", is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "csrf-admin", "password": "correct-horse-battery-staple-42"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_admin_actions_refuse_a_post_without_a_csrf_token(user_factory):
    admin = user_factory(role="admin", is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post("/admin/accounts/user/", {"action": "delete_selected", "_selected_action": [admin.pk]})
    assert response.status_code == 403


# --- configuration checks ------------------------------------------------------------------------
def _ids(messages) -> set[str]:
    return {message.id for message in messages}


def test_the_security_check_passes_on_the_test_configuration_except_the_development_jwt_key(settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": "k" * 48}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    assert check_security_configuration(None) == []


@pytest.mark.parametrize("key", ["", "short", "same-as-secret"], ids=["unset", "too-short", "equal-to-secret-key"])
def test_a_weak_jwt_signing_key_is_an_error(key, settings):
    if key == "same-as-secret":
        key = settings.SECRET_KEY
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": key}
    assert "agentplatform.E005" in _ids(check_security_configuration(None))


def test_rate_limits_without_a_shared_atomic_cache_are_an_error(settings):
    settings.RATELIMIT_ENABLE = True
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert "agentplatform.E006" in _ids(check_security_configuration(None))


def test_rotation_without_the_blacklist_app_is_an_error(settings):
    apps = [app for app in settings.INSTALLED_APPS if app != "rest_framework_simplejwt.token_blacklist"]
    with override_settings(INSTALLED_APPS=apps):
        from django.conf import settings as live

        assert "rest_framework_simplejwt.token_blacklist" not in live.INSTALLED_APPS
        assert "agentplatform.E007" in _ids(check_security_configuration(None))


def _production_env(**changes):
    env = {**PRODUCTION_ENV, **changes}
    return {name: value for name, value in env.items() if value is not None}


def test_check_deploy_is_clean_on_a_production_like_configuration():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_without_an_explicit_trusted_proxy_count_fails_the_check_and_start_up():
    env = _production_env(TRUSTED_PROXY_COUNT=None)
    result = run_manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "agentplatform.E004" in result.stdout + result.stderr
    started = run_python("import agentplatform.wsgi", env=env)
    assert started.returncode != 0
    assert "Refusing to start" in started.stderr and "agentplatform.E004" in started.stderr


def test_production_with_a_jwt_key_equal_to_the_secret_key_does_not_start():
    env = _production_env(JWT_SIGNING_KEY=PRODUCTION_ENV["SECRET_KEY"])
    result = run_manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "JWT_SIGNING_KEY" in result.stderr


def test_a_correct_production_configuration_starts():
    started = run_python("import agentplatform.wsgi; print('started')", env=_production_env())
    assert started.returncode == 0, started.stderr
    assert "started" in started.stdout


# --- attacks on the accounts app: each performed, each refused -----------------------------------

TOKEN_URL = "/api/v1/auth/token"
REFRESH_URL = "/api/v1/auth/token/refresh"
ME_URL = "/api/v1/auth/me"


def _login(client, username, password, **extra):
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json", **extra)


@pytest.mark.django_db
def test_a_stolen_refresh_token_rotated_by_the_attacker_dies_when_the_victim_reuses_it(api_client, user_factory):
    victim = user_factory(role="operator")
    stolen = _login(api_client, victim.username, TEST_PASSWORD).json()["refresh"]
    attacker = api_client.post(REFRESH_URL, {"refresh": stolen}, format="json").json()  # the thief is first
    victim_retry = api_client.post(REFRESH_URL, {"refresh": stolen}, format="json")
    assert victim_retry.status_code == 401 and victim_retry.json()["error"]["code"] == "token_reused"
    assert api_client.post(REFRESH_URL, {"refresh": attacker["refresh"]}, format="json").status_code == 401
    assert api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {attacker['access']}").status_code == 401


@pytest.mark.django_db
def test_wrong_passwords_from_many_addresses_do_not_lock_the_owner_out_of_their_known_device(api_client, user_factory):
    victim = user_factory(role="operator")
    device = _login(api_client, victim.username, TEST_PASSWORD, REMOTE_ADDR="10.20.0.1").json()["device_token"]
    for number in range(20):
        _login(api_client, victim.username, f"guess-{number}", REMOTE_ADDR=f"10.21.0.{number}")
    assert _login(api_client, victim.username, TEST_PASSWORD, REMOTE_ADDR="10.22.0.1").status_code == 429
    owner = _login(api_client, victim.username, TEST_PASSWORD, REMOTE_ADDR="10.20.0.1", HTTP_X_DEVICE_TOKEN=device)
    assert owner.status_code == 200


@pytest.mark.django_db
def test_an_attacker_with_a_stolen_device_token_still_gets_only_a_few_guesses(api_client, user_factory):
    victim = user_factory(role="operator")
    device = _login(api_client, victim.username, TEST_PASSWORD).json()["device_token"]
    statuses = {
        _login(api_client, victim.username, f"guess-{n}", HTTP_X_DEVICE_TOKEN=device).status_code for n in range(10)
    }
    assert 429 in statuses
    assert _login(api_client, victim.username, TEST_PASSWORD, HTTP_X_DEVICE_TOKEN=device).status_code == 429


@pytest.mark.django_db
def test_a_flood_of_forbidden_requests_turns_into_429_and_one_audit_event(auth_client, flush_denials):
    import time_machine
    from django.utils import timezone

    from audit.models import AuditEvent

    agent = auth_client("agent")  # agents may not read reports
    with time_machine.travel(timezone.now().replace(second=5), tick=False):  # one window, one minute
        statuses = [agent.get("/api/v1/reports/").status_code for _ in range(200)]
    assert statuses[0] == 403 and statuses[-1] == 429 and statuses.count(403) < 50
    assert flush_denials() == 1
    (event,) = AuditEvent.objects.filter(action="auth.permission_denied")
    assert event.details["count"] == 200


@pytest.mark.django_db
def test_bogus_api_keys_run_out_of_401s():
    import time_machine
    from django.utils import timezone
    from rest_framework.test import APIClient

    client = APIClient(REMOTE_ADDR="10.30.0.1")
    with time_machine.travel(timezone.now().replace(second=5), tick=False):
        statuses = [
            client.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key apk_guess{n}.secret").status_code for n in range(50)
        ]
    assert statuses.count(401) < 50 and statuses[-1] == 429
