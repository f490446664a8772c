"""Security properties across the platform: the role matrix is complete, API keys stay secret,
the admin carries CSRF and clickjacking protection, production refuses a weak configuration, and
the application's database role cannot rewrite or delete the audit log.

(JWT forgery, lockout and SSRF have their own tests in tests/accounts and tests/enrichment.)
"""

from __future__ import annotations

import json
import logging
import re

import psycopg
import pytest
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from agentplatform.checks import check_security_configuration
from tests.accounts.matrix import MATRIX
from tests.conftest import PRODUCTION_ENV, ROOT, TEST_PASSWORD, connect_as, database_url_as, run_manage, run_python


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


# --- client address and proxies ------------------------------------------------------------------
_PROXY_SETTINGS = {"TRUSTED_PROXY_COUNT": 1, "TRUSTED_PROXIES": ("10.9.0.0/16",)}


@pytest.mark.django_db
@override_settings(**_PROXY_SETTINGS)
def test_invented_forwarded_addresses_neither_escape_the_login_lockout_nor_reach_the_audit_log(api_client):
    """30 failed logins, each claiming a new X-Forwarded-For, from a peer that is not our proxy."""
    from audit.models import AuditEvent

    statuses = [
        api_client.post(
            "/api/v1/auth/token",
            {"username": f"guess-{number}", "password": "wrong-password"},
            format="json",
            REMOTE_ADDR="198.51.100.20",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{number}",
        ).status_code
        for number in range(30)
    ]
    assert statuses[:4] == [401] * 4
    assert set(statuses[4:]) == {429}
    locked = AuditEvent.objects.filter(action="auth.lockout")
    assert locked.exists()
    assert {str(event.ip) for event in locked} == {"198.51.100.20"}
    assert not AuditEvent.objects.filter(ip__startswith="203.0.113.").exists()


@pytest.mark.django_db
@override_settings(**_PROXY_SETTINGS)
def test_the_forwarded_address_counts_only_when_our_proxy_sends_it(api_client):
    def login(peer, forwarded):
        body = {"username": "nobody", "password": "wrong-password"}
        return api_client.post(
            "/api/v1/auth/token", body, format="json", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded
        )

    from audit.models import AuditEvent

    for number in range(5):
        login("10.9.0.7", f"1.2.3.4, 203.0.113.{number}")
    assert {str(event.ip) for event in AuditEvent.objects.filter(action="auth.lockout")} == {"203.0.113.4"}


@override_settings(
    **_PROXY_SETTINGS, SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")
)
def test_a_direct_client_cannot_claim_https_with_x_forwarded_proto():
    direct = Client(REMOTE_ADDR="198.51.100.20").get("/healthz-not-exempt", HTTP_X_FORWARDED_PROTO="https")
    assert direct.status_code == 301
    assert direct["Location"].startswith("https://")
    proxied = Client(REMOTE_ADDR="10.9.0.7").get("/healthz-not-exempt", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 404  # believed: served as HTTPS, no redirect


# --- /readyz -------------------------------------------------------------------------------------
def test_readyz_tells_an_anonymous_caller_which_check_is_down_and_nothing_more():
    """The 503 used to carry the connection error, host and port included; the info sections more."""
    from tests.agentplatform.test_probes import _closed_port, probe_env, run_probe

    port = _closed_port()
    outcome = run_probe(probe_env("database", port))
    anonymous = outcome["anonymous"]
    assert anonymous["status"] == 503
    assert anonymous["body"] == {"status": "unavailable", "checks": {"database": "down", "cache": "ok", "broker": "ok"}}
    operator = json.dumps(outcome["operator"]["body"])
    assert str(port) in operator and "info" in outcome["operator"]["body"]  # the details exist, for the operator


@pytest.mark.django_db
def test_readyz_details_need_the_metrics_token_or_a_staff_session(client, settings, user_factory):
    settings.METRICS_TOKEN = "readyz-security-metrics-token-with-entropy-Zq81"

    def keys(response):
        assert response.status_code == 200
        return set(response.json())

    assert keys(client.get("/readyz")) == {"status", "checks"}
    assert keys(client.get("/readyz", HTTP_AUTHORIZATION="Bearer wrong-token")) == {"status", "checks"}
    assert keys(client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")) >= {
        "dependencies",
        "info",
    }
    client.force_login(user_factory(role="analyst", is_staff=False))
    assert keys(client.get("/readyz")) == {"status", "checks"}
    client.force_login(user_factory(role="analyst", is_staff=True))
    assert keys(client.get("/readyz")) >= {"dependencies", "info"}


# --- page headers and the API docs ---------------------------------------------------------------
_TEMPLATE_DIRS = [ROOT / "templates", *sorted(ROOT.glob("*/templates"))]
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>", re.I)
_EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def test_no_project_template_carries_inline_script_or_event_handlers():
    """The page policy runs no inline script, so none may be needed: each would break under it."""
    templates = [path for directory in _TEMPLATE_DIRS for path in directory.rglob("*.html")]
    assert len(templates) >= 10
    offenders = []
    for path in templates:
        text = path.read_text()
        if _INLINE_SCRIPT.search(text) or _EVENT_HANDLER.search(text) or "javascript:" in text.lower():
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"move inline script to a static file: {offenders}"


@pytest.mark.django_db
def test_an_injected_inline_script_would_not_run_on_an_admin_page(client, user_factory):
    client.force_login(user_factory(role="admin"))
    for url in ("/admin/login/", "/admin/", "/admin/audit/auditevent/"):
        response = client.get(url, follow=True)
        assert response.status_code == 200
        policy = dict(
            part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip()
        )
        assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no nonce: inline script never runs
        assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        assert "unsafe" not in policy["style-src"]
        assert "camera=()" in response["Permissions-Policy"]


def test_json_answers_carry_no_page_policy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response and "Permissions-Policy" not in response


@pytest.mark.django_db
def test_a_304_carries_no_page_policy(client, user_factory):
    from experiments.snapshot import snapshot_reset
    from prompts import services

    prompt = services.prompt_create(actor=None, key="support")
    services.prompt_version_create(actor=None, prompt=prompt, content="Hi", labels=["production"])
    snapshot_reset()
    client.force_login(user_factory(role="agent"))
    etag = client.get("/api/v1/prompts/support/labels/production")["ETag"]
    response = client.get("/api/v1/prompts/support/labels/production", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert "Content-Security-Policy" not in response and "Permissions-Policy" not in response
    snapshot_reset()


@pytest.mark.django_db
def test_the_api_docs_need_a_login_unless_public(client, settings, user_factory):
    settings.API_DOCS_PUBLIC = False
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code in (401, 403)
    assert b"/api/v1/" not in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/admin/login/?next=/api/docs/")
    client.force_login(user_factory(role="analyst"))
    assert client.get("/api/schema/", HTTP_ACCEPT="application/json").status_code == 200
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert "'unsafe-inline'" not in page["Content-Security-Policy"].split("script-src", 1)[1].split(";")[0]
    client.logout()
    settings.API_DOCS_PUBLIC = True
    assert client.get("/api/schema/", HTTP_ACCEPT="application/json").status_code == 200


def test_production_keeps_the_api_docs_behind_a_login_by_default():
    code = "from agentplatform import settings; print(settings.API_DOCS_PUBLIC)"
    assert run_python(code, env=_production_env()).stdout.split() == ["False"]
    assert run_python(code, env=_production_env(API_DOCS_PUBLIC="1")).stdout.split() == ["True"]


def test_an_analyst_cannot_disable_audit_sealing_or_run_a_job_from_the_schedule_admin(user_factory, settings):
    from django.contrib.auth.models import Permission
    from django_celery_beat.models import PeriodicTask

    from audit.models import AuditEvent
    from reports.models import JobRun

    settings.CELERY_BROKER_URL = "memory://"  # no worker: a run that got through would happen here
    analyst = user_factory(role="analyst")
    analyst.user_permissions.add(Permission.objects.get(codename="view_periodictask"))
    client = Client()
    client.force_login(analyst)
    sealing = list(PeriodicTask.objects.filter(name__in=["audit_seal", "audit_retention"]).values_list("pk", flat=True))
    report = PeriodicTask.objects.get(name="daily_report").pk
    url = "/admin/django_celery_beat/periodictask/"
    assert client.get(url).status_code == 200  # the analyst may look at schedules
    for action in ("disable_tasks", "toggle_tasks"):
        client.post(url, {"action": action, "_selected_action": sealing})
    client.post(url, {"action": "run_tasks", "_selected_action": [report]})
    assert PeriodicTask.objects.filter(pk__in=sealing, enabled=True).count() == 2
    assert not JobRun.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="schedule.").exists()


def test_the_benchmark_views_are_not_served_without_bench_endpoints():
    from django.urls import Resolver404

    for path in ("/api/v1/bench/noop", "/api/v1/bench/noop-audit", "/api/v1/bench/noop-untimed"):
        with pytest.raises(Resolver404):
            resolve(path)


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


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip()
    return values


_STRONG = {
    "SECRET_KEY": PRODUCTION_ENV["SECRET_KEY"],
    "JWT_SIGNING_KEY": PRODUCTION_ENV["JWT_SIGNING_KEY"],
    "METRICS_TOKEN": "metrics-production-like-token-with-enough-entropy-Zq81Lw3",
}


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SIGNING_KEY", "METRICS_TOKEN"])
def test_production_refuses_to_start_with_a_secret_copied_from_env_example(name):
    """The .env.example placeholders, kept by mistake, would let anyone sign an admin JWT or scrape /metrics."""
    example = _env_example()[name]
    assert "change-me" in example
    result = run_python("import agentplatform.wsgi", env=_production_env(**{**_STRONG, name: example}))
    assert result.returncode != 0
    assert f"Environment variable {name} contains the placeholder 'change-me'" in result.stderr
    assert example not in result.stderr  # the message names the variable, never its value


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SECRET_KEY", "Sh0rt-but-random-9f3kLm", "is 23 characters long"),
        ("JWT_SIGNING_KEY", "abc123" * 8, "has only 6 distinct characters"),
        ("JWT_SIGNING_KEY", _STRONG["SECRET_KEY"], "must differ from SECRET_KEY"),
        ("METRICS_TOKEN", _STRONG["JWT_SIGNING_KEY"], "must differ from JWT_SIGNING_KEY"),
    ],
    ids=["short", "repetitive", "jwt-key-is-the-secret-key", "metrics-token-is-the-jwt-key"],
)
def test_production_refuses_to_start_with_a_weak_or_shared_secret(name, value, message):
    result = run_python("import agentplatform.settings", env=_production_env(**{**_STRONG, name: value}))
    assert result.returncode != 0
    assert f"Environment variable {name} {message}" in result.stderr


def test_a_correct_production_configuration_starts():
    started = run_python("import agentplatform.wsgi; print('started')", env=_production_env())
    assert started.returncode == 0, started.stderr
    assert "started" in started.stdout


# --- the application's database role (manage.py setup_db_roles) -----------------------------------
def _sealed_events(*actions: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from audit.integrity import audit_seal_pending
    from audit.services import audit_log

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
    from audit.integrity import audit_verify_chain
    from audit.models import AuditCheckpoint, AuditEvent

    code = """
import json, os
from datetime import timedelta
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")
django.setup()
import time_machine
from django.utils import timezone
from audit.selectors import audit_database_role
from audit.integrity import audit_seal_pending
from audit.retention import audit_retention_run
from audit.services import audit_log
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
