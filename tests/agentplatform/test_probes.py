import json
import socket
import threading

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


TOKEN = "readyz-test-metrics-token-with-enough-entropy-7Gq2"


@pytest.mark.django_db
def test_readyz_reports_each_dependency_up(client, settings):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}
    assert set(body["dependencies"]) == {"database", "cache", "broker"}
    for dependency in body["dependencies"].values():
        assert dependency["status"] == "up"
        assert dependency["latency_ms"] >= 0


@pytest.mark.django_db
def test_readyz_answers_an_anonymous_caller_with_the_check_names_only(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}}


_PROBE = """
import json, os, django
django.setup()
from django.test import Client
outcome = {}
bearer = "Bearer " + os.environ["METRICS_TOKEN"]
for name, headers in (("anonymous", {}), ("operator", {"HTTP_AUTHORIZATION": bearer})):
    response = Client().get("/readyz", **headers)
    outcome[name] = {"status": response.status_code, "body": response.json()}
print(json.dumps(outcome))
"""


def run_probe(env: dict[str, str]) -> dict:
    """/readyz answered in a fresh process, anonymously and with the metrics token."""
    result = run_python(_PROBE, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def probe_env(down: str, port: int) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "agentplatform.settings",
        "DJANGO_ENV": "test",
        "CELERY_BROKER_URL": "memory://",
        "REDIS_URL": "",
        "DATABASE_URL": "",
        "METRICS_TOKEN": TOKEN,
        "VAR_DIR": "/tmp/agentplatform-readyz-test",
    }
    if down == "database":
        env["DATABASE_URL"] = f"postgres://root@127.0.0.1:{port}/postgres"
    elif down == "cache":
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    else:
        env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{port}/0"
    return env


@pytest.mark.parametrize("down", ["database", "cache", "broker"])
def test_readyz_answers_503_naming_the_dependency_that_is_down(down):
    outcome = run_probe(probe_env(down, _closed_port()))
    anonymous, operator = outcome["anonymous"], outcome["operator"]
    assert anonymous["status"] == operator["status"] == 503
    assert anonymous["body"]["status"] == "unavailable"
    assert anonymous["body"]["checks"][down] == "down"
    assert all(value == "ok" for name, value in anonymous["body"]["checks"].items() if name != down)
    body = operator["body"]
    assert body["dependencies"][down]["status"] == "down"
    assert body["error"]["details"]["down"] == [down]
    assert down in body["error"]["message"]
    others = set(body["dependencies"]) - {down}
    assert all(body["dependencies"][name]["status"] == "up" for name in others)


_REPEATED_PROBES = """
import json, os, sys, django
django.setup()
from django.test import Client
answers = [Client().get("/readyz").json() for _ in range(6)]
print(json.dumps(answers))
sys.stdout.flush()
os._exit(0)  # the exit hooks (the metrics recorder's last flush) would wait on the hung database
"""


class SilentServer:
    """A TCP server on loopback that accepts every connection and never answers (a hung database)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


def test_a_hung_database_check_is_not_started_again_while_it_still_runs():
    server = SilentServer()
    try:
        env = probe_env("database", server.port)
        env["DB_CONNECT_TIMEOUT"] = "120"  # the connection attempt hangs for the whole test
        result = run_python(_REPEATED_PROBES, env=env)
        assert result.returncode == 0, result.stderr
        answers = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        server.close()
    assert [answer["checks"]["database"] for answer in answers] == ["down"] * 6
    assert all(answer["checks"]["cache"] == answer["checks"]["broker"] == "ok" for answer in answers)
    # Six probes, one connection attempt: the later probes found the first check still running.
    assert len(server.accepted) == 1
