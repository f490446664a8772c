"""Revocation is immediate across web processes: two real servers share only PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from tests.conftest import ROOT, TEST_PASSWORD

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the servers need the shared test database"),
    pytest.mark.django_db(transaction=True),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(port: int) -> subprocess.Popen:
    database = urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + connection.settings_dict["NAME"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "_AGENTPLATFORM", "CELERY_"))}
    env.update({"DJANGO_ENV": "test", "DATABASE_URL": urlunsplit(database), "CELERY_BROKER_URL": "memory://"})
    return subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the web process exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no web process on port {port}")


@pytest.fixture
def two_web_processes() -> Iterator[tuple[str, str]]:
    ports = [_free_port(), _free_port()]
    processes = [_serve(port) for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            _wait_until_listening(port, process)
        yield tuple(f"http://127.0.0.1:{port}" for port in ports)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def call(base: str, method: str, path: str, body: dict | None = None, access: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if access:
        headers["Authorization"] = f"Bearer {access}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_a_token_revoked_in_one_process_is_refused_by_the_other_on_its_next_request(two_web_processes, user_factory):
    first, second = two_web_processes
    person = user_factory(role="analyst")
    credentials = {"username": person.username, "password": TEST_PASSWORD}

    status, pair = call(first, "POST", "/api/v1/auth/token", credentials)
    assert status == 200
    assert call(second, "GET", "/api/v1/auth/me", access=pair["access"])[0] == 200  # the second has it cached
    assert call(first, "POST", "/api/v1/auth/logout", {"refresh": pair["refresh"]}, access=pair["access"])[0] == 204
    assert call(second, "GET", "/api/v1/auth/me", access=pair["access"])[0] == 401

    status, pair = call(first, "POST", "/api/v1/auth/token", credentials)
    assert call(second, "GET", "/api/v1/auth/me", access=pair["access"])[0] == 200
    person.set_password("a-new-secret-passphrase-5")  # a third process: this one
    person.save()
    assert call(second, "GET", "/api/v1/auth/me", access=pair["access"])[0] == 401
    assert call(first, "GET", "/api/v1/auth/me", access=pair["access"])[0] == 401
