"""Settings for the test suite: the real settings, with the backing services detected.

PostgreSQL and Redis are used when ``DATABASE_URL``/``REDIS_URL`` are set or their default local
ports answer; otherwise SQLite and local memory. With ``CI=true`` both are required and their
absence stops the run with a clear message. The choice is printed once per run.
"""

from __future__ import annotations

import os
import socket


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def _detect() -> str:
    os.environ.setdefault("DJANGO_ENV", "test")
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    # A variable that is set, even to "", is the developer's choice: DATABASE_URL= REDIS_URL= make test
    # runs on SQLite and local memory although the servers answer.
    if "DATABASE_URL" not in os.environ and _port_open("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = "postgres://root@127.0.0.1:5432/postgres"
    if "REDIS_URL" not in os.environ and _port_open("127.0.0.1", 6379):
        # Database 15: tests flush their own database, never the one a developer's make run uses.
        os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"
    if ci:
        missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
        if missing:
            raise SystemExit(
                f"CI=true requires PostgreSQL and Redis, but {', '.join(missing)} is not set and the default "
                "local port does not answer. Start the services (see .ci/run) and retry."
            )
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    database = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    cache = "Redis" if os.environ.get("REDIS_URL") else "local memory"
    return f"tests use {database} and {cache}"


# tests/conftest.py prints this in pytest's report header (stderr is captured this early).
TEST_SERVICES_SUMMARY = _detect()

from agentplatform.settings import *  # noqa: E402,F403

# WhiteNoise warns on every request when STATIC_ROOT is missing; tests never run collectstatic.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
