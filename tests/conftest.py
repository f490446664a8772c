"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent


def pytest_report_header(config):
    from django.conf import settings

    return f"agentplatform: {settings.TEST_SERVICES_SUMMARY}"


@pytest.fixture(autouse=True)
def _clear_cache():
    """Each test starts with an empty shared cache (the test Redis database or local memory)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


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
    "TRUSTED_PROXY_COUNT": "1",
}
