import json
import socket

import pytest

from tests.conftest import run_python


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_without_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_readyz_reports_each_dependency_up(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["dependencies"]) == {"database", "cache", "broker"}
    for dependency in body["dependencies"].values():
        assert dependency["status"] == "up"
        assert dependency["latency_ms"] >= 0


_PROBE = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


@pytest.mark.parametrize("down", ["database", "cache", "broker"])
def test_readyz_answers_503_naming_the_dependency_that_is_down(down):
    port = _closed_port()
    env = {
        "DJANGO_SETTINGS_MODULE": "agentplatform.settings",
        "DJANGO_ENV": "test",
        "CELERY_BROKER_URL": "memory://",
        "REDIS_URL": "",
        "DATABASE_URL": "",
        "VAR_DIR": "/tmp/agentplatform-readyz-test",
    }
    if down == "database":
        env["DATABASE_URL"] = f"postgres://root@127.0.0.1:{port}/postgres"
    elif down == "cache":
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        env["CELERY_BROKER_URL"] = "memory://"
    else:
        env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{port}/0"
    result = run_python(_PROBE, env=env)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 503
    body = outcome["body"]
    assert body["status"] == "unavailable"
    assert body["dependencies"][down]["status"] == "down"
    assert body["error"]["details"]["down"] == [down]
    assert down in body["error"]["message"]
    others = set(body["dependencies"]) - {down}
    assert all(body["dependencies"][name]["status"] == "up" for name in others)
