"""Security properties across the platform: the role matrix is complete, API keys stay secret,
the admin carries CSRF and clickjacking protection, production refuses a weak configuration, and
the application's database role cannot rewrite or delete the audit log.

(JWT forgery, lockout and SSRF have their own tests in tests/accounts and tests/enrichment.)
"""

from __future__ import annotations

import json
import logging

import psycopg
import pytest
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from agentplatform.checks import check_security_configuration
from tests.accounts.matrix import MATRIX
from tests.conftest import PRODUCTION_ENV, connect_as, database_url_as, run_manage, run_python


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


# --- the application's database role (manage.py setup_db_roles) -----------------------------------
def _sealed_events(*actions: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from audit.services import audit_log, audit_seal_pending

    for action in actions:
        audit_log(actor="system:test", action=action)
    assert audit_seal_pending(now=timezone.now() + timedelta(minutes=1)) == len(actions)


AUDIT_TAMPERING = [
    "DELETE FROM audit_auditevent",
    "UPDATE audit_auditevent SET action = 'rewritten'",
    "UPDATE audit_auditevent SET chain_index = NULL, hash = '', prev_hash = ''",
    "TRUNCATE audit_auditevent",
    "DELETE FROM audit_auditcheckpoint",
    "TRUNCATE audit_auditcheckpoint",
    "DELETE FROM audit_auditsealing",
    "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_guard",
]


@pytest.mark.parametrize("statement", AUDIT_TAMPERING)
def test_the_application_role_cannot_tamper_with_the_audit_log_even_with_the_retention_flag_on(app_role, statement):
    from audit.models import AuditEvent

    _sealed_events("thing.happened", "other.happened")
    with connect_as(app_role) as conn:
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"permission denied|must be owner"),
            conn.transaction(),
        ):
            conn.execute("SET LOCAL audit.retention_delete = 'on'")
            conn.execute(statement)
        # What the application does need still works: reading and appending.
        assert conn.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0] == 2
    assert AuditEvent.objects.filter(chain_index__isnull=False).count() == 2


def test_the_retention_function_refuses_events_younger_than_its_pinned_minimum_age(app_role):
    """A forged archive record over recent events, and the session's attempt to lower the minimum
    age, do not get the application's role past the SECURITY DEFINER function."""
    from audit.models import AuditEvent

    _sealed_events("thing.happened", "other.happened")
    with connect_as(app_role) as conn:
        with conn.transaction():
            archive_id = conn.execute(
                "INSERT INTO audit_auditexport (created_at, kind, period_start, period_end, path, row_count, "
                "size_bytes, first_chain_index, last_chain_index) "
                "VALUES (now(), 'archive', now(), now(), 'forged.csv.gz', 2, 0, 1, 2) RETURNING id"
            ).fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="younger than 30 days"), conn.transaction():
            conn.execute("SET LOCAL audit.retention_min_days = '0'")
            conn.execute("SELECT audit_retention_delete(%s, 100)", [archive_id])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not a retention archive"), conn.transaction():
            conn.execute("SELECT audit_retention_delete(%s, 100)", [archive_id + 1000])
    assert AuditEvent.objects.count() == 2


def test_the_platform_runs_seals_and_retains_the_audit_log_as_the_application_role(app_role, tmp_path):
    """Web, worker and beat connect as the application's role: writing, sealing and retention (through
    the SECURITY DEFINER functions) work, and the chain still verifies."""
    from audit.models import AuditCheckpoint, AuditEvent
    from audit.services import audit_verify_chain

    code = """
import json, os
from datetime import timedelta
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")
django.setup()
import time_machine
from django.utils import timezone
from audit.selectors import audit_database_role
from audit.services import audit_log, audit_retention_run, audit_seal_pending
now = timezone.now()
with time_machine.travel(now - timedelta(days=40), tick=False):
    for n in range(3):
        audit_log(actor="system:test", action="old.happened", resource_id=n)
audit_log(actor="system:test", action="new.happened")
sealed = audit_seal_pending(now=now + timedelta(minutes=1))
deleted = audit_retention_run()
print(json.dumps({"role": audit_database_role(), "sealed": sealed, "deleted": deleted}))
"""
    env = _production_env(
        DATABASE_URL=database_url_as(app_role),
        AUDIT_RETENTION_DAYS="30",
        MEDIA_ROOT=str(tmp_path),
        AUDIT_EXPORT_DIR=str(tmp_path / "exports"),
    )
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # /readyz shows the same role information (info.audit.database_role).
    assert outcome == {"role": {"name": app_role, "least_privilege": True}, "sealed": 4, "deleted": 3}
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {"new.happened", "audit.retention_completed"}
    assert AuditCheckpoint.objects.get().last_chain_index == 3
    with override_settings(MEDIA_ROOT=tmp_path):
        assert audit_verify_chain().ok
