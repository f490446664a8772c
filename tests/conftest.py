"""Shared fixtures for the whole suite."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.cache import api_key_memo, jwt_memo
from agentplatform import ratelimit
from experiments.services.exposures import exposures_discard_buffered

ROOT = Path(__file__).resolve().parent.parent


def pytest_report_header(config):
    from django.conf import settings

    return f"agentplatform: {settings.TEST_SERVICES_SUMMARY}"


# The groups that start servers, workers, browsers or proxies, or fuzz every API operation: marked
# ``slow`` so ``pytest -m "not slow"`` is the fast inner loop (``make test`` still runs everything).
SLOW_GROUPS = (
    "tests/e2e/",
    "tests/browser/",
    "tests/reliability/test_faults.py",
    "tests/reliability/test_upstream_faults.py",
    "tests/reliability/test_worker_killed.py",
    "tests/reliability/test_schema_fuzz.py",
    "tests/sdk/test_local_evaluation.py",
    "tests/sdk/test_failures.py",
    "tests/sdk/test_labels_async_otel.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.relative_to(ROOT).as_posix().startswith(SLOW_GROUPS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Each test starts with an empty shared cache (the test Redis database or local memory).

    Rate-limit leases and this process's copies of verified API keys stand in front of that cache,
    so they go with it, and so do the exposures an earlier test buffered and never flushed.
    """
    cache.clear()
    ratelimit.reset_fallback_state()
    api_key_memo.clear()
    jwt_memo.clear()
    exposures_discard_buffered()
    yield
    cache.clear()
    ratelimit.reset_fallback_state()
    api_key_memo.clear()
    jwt_memo.clear()
    exposures_discard_buffered()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _denial_flushes(monkeypatch) -> list[str]:
    """The refusal tallies whose audit flush a test scheduled, kept here instead of on the broker
    (where they would outlive the test and show in another's queue lengths)."""
    from accounts import denials

    scheduled: list[str] = []
    monkeypatch.setattr(denials, "_schedule_flush", lambda bucket, description, countdown: scheduled.append(bucket))
    return scheduled


@pytest.fixture
def flush_denials(_denial_flushes):
    """``flush_denials()`` writes the audit event of every refusal tally started so far, as the
    Celery task scheduled for just after the minute would (returns how many events it wrote)."""
    from accounts import denials

    def flush() -> int:
        written = sum(denials.denials_flush(bucket=bucket) for bucket in _denial_flushes)
        _denial_flushes.clear()
        return written

    return flush


def run_manage(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Runs manage.py in a fresh interpreter with exactly the given environment additions."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "_AGENTPLATFORM", "CELERY_"))}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs a snippet in a fresh interpreter (for configuration that is read once at start-up)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "_AGENTPLATFORM", "CELERY_"))}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=timeout, check=False
    )


PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "x7Gq2-production-like-secret-key-with-enough-entropy-9f3kLm0pQ8sT1vW4yZ",
    "JWT_SIGNING_KEY": "jwt-production-like-signing-key-with-enough-entropy-0a9s8d7f6g5h4j3k",
    "ALLOWED_HOSTS": "ops.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://ops.example.com",
    "DATABASE_URL": "postgres://root@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    # As docker-compose ships: clients connect to gunicorn directly (production requires it explicit).
    "TRUSTED_PROXY_COUNT": "0",
}


# --- accounts: identities for any app's tests ---------------------------------------------------
# user_factory(role=...) -> a saved user in that role's group; agent_key -> the Authorization
# header of a fresh agent's API key; auth_client(role) -> an APIClient authenticated as a fresh
# user of that role (Bearer JWT for people, Api-Key for "agent"). Every one goes through the real
# authentication classes, so permissions come from the role table exactly as in production.

TEST_PASSWORD = "correct-horse-battery-staple-42"


class AuthHeader(dict):
    """``{"HTTP_AUTHORIZATION": "Api-Key ..."}`` to splat into a test client call, plus who it is."""

    def __init__(self, *, user, api_key, raw_key: str):
        super().__init__(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
        self.user = user
        self.api_key = api_key
        self.raw_key = raw_key


@pytest.fixture
def user_factory(db):
    """``user_factory(role="operator", username=None, password=TEST_PASSWORD, **fields)``."""
    import itertools

    from accounts.models import User

    numbers = itertools.count(1)

    def make(*, role: str = "analyst", username: str | None = None, password: str | None = TEST_PASSWORD, **fields):
        username = username or f"{role}-{next(numbers)}"
        fields.setdefault("is_staff", role != "agent")
        user = User.objects.create_user(username=username, password=password, role=role, **fields)
        if password is None:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user

    return make


@pytest.fixture
def agent_key(user_factory) -> AuthHeader:
    """An agent user with an API key: ``api_client.get(url, **agent_key)``; ``.user``, ``.raw_key``."""
    from accounts.services import api_key_create

    agent = user_factory(role="agent", password=None)
    api_key, raw_key = api_key_create(user=agent, name="test")
    return AuthHeader(user=agent, api_key=api_key, raw_key=raw_key)


@pytest.fixture
def auth_client(user_factory):
    """``auth_client("operator")`` -> an APIClient acting as a fresh operator (``client.user``)."""
    from accounts.services import api_key_create
    from accounts.tokens import token_pair_for

    def make(role: str = "analyst", *, user=None) -> APIClient:
        user = user or user_factory(role=role, password=None if role == "agent" else TEST_PASSWORD)
        client = APIClient()
        if user.role == "agent":
            _, raw_key = api_key_create(user=user, name="test")
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
        else:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair_for(user)['access']}")
        client.user = user
        return client

    return make


# --- database roles: the least-privilege deployment (manage.py setup_db_roles) --------------------
@pytest.fixture
def app_role(transactional_db, settings):
    """An application role made by ``setup_db_roles`` in the test database (a name unique to it,
    dropped afterwards), with the retention minimum age pinned to 30 days. PostgreSQL only."""
    import uuid

    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("database roles exist on PostgreSQL only")
    settings.AUDIT_RETENTION_DAYS = 30
    name = f"{connection.settings_dict['NAME']}_app_{uuid.uuid4().hex[:8]}".lower()
    call_command("setup_db_roles", "--app-role", name, stdout=io.StringIO())
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{name}"')
        cursor.execute(f'DROP ROLE "{name}"')


def connect_as(role: str):
    """A psycopg connection to the test database as ``role`` (CI trusts local connections)."""
    import psycopg
    from django.db import connection

    params = connection.settings_dict
    return psycopg.connect(
        host=params["HOST"] or "127.0.0.1", port=params["PORT"] or 5432, dbname=params["NAME"], user=role
    )


def database_url_as(role: str) -> str:
    from django.db import connection

    params = connection.settings_dict
    return f"postgres://{role}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"
