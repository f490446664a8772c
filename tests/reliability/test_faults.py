"""Faults injected on private instances: Redis stops and returns, PostgreSQL becomes unreachable
and returns. The API keeps its promises through both, and recovers without a restart.
"""

from __future__ import annotations

import io
import json
import uuid
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from tests.experiments.conftest import experiment_body
from tests.reliability.faults import PrivateRedis, default_database_through_proxy

ON_POSTGRESQL = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def wsgi_call(app, method: str, path: str, *, headers: dict | None = None, body: dict | None = None):
    """One request through the real WSGI handler (unlike the test client, it keeps Django's
    connection housekeeping: a broken connection is dropped at the next request's start)."""
    raw = json.dumps(body).encode() if body is not None else b""
    environ: dict = {}
    setup_testing_defaults(environ)
    query = ""
    if "?" in path:
        path, query = path.split("?", 1)
    environ.update(
        REQUEST_METHOD=method,
        PATH_INFO=path,
        QUERY_STRING=query,
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(raw)),
        **{"wsgi.input": io.BytesIO(raw)},
        **(headers or {}),
    )
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(response_headers)

    result = app(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return captured["status"], captured["headers"], content


def assert_envelope(status: int, headers: dict, content: bytes, expected_status: int) -> dict:
    assert status == expected_status, content[:500]
    assert headers["Content-Type"].startswith("application/json"), content[:200]
    assert b"Traceback" not in content and b"<html" not in content.lower()
    error = json.loads(content)["error"]
    assert error["request_id"]
    return error


# --- Redis stops, then returns -------------------------------------------------------------------
@pytest.fixture
def private_redis(tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    cache_settings = {
        "default": {
            **django_settings.CACHES["default"],
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis.url,
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with override_settings(CACHES=cache_settings, RATELIMIT_ENABLE=True):
        yield redis
    redis.stop()


@pytest.fixture
def running_experiment(auth_client):
    operator = auth_client("operator")
    body = experiment_body(key="fault-redis", target_prompt_type="support", user_percentage=100)
    assert operator.post("/api/v1/experiments/", body, format="json").status_code == 201
    assert operator.post("/api/v1/experiments/fault-redis/start").status_code == 200
    return "fault-redis"


@pytest.mark.skipif(not django_settings.CACHES["default"]["BACKEND"].endswith("RedisCache"), reason="needs Redis")
def test_the_api_keeps_serving_through_a_redis_outage_and_loses_no_buffered_write(
    private_redis, running_experiment, agent_key, client
):
    from audit.models import AuditEvent
    from experiments.models import Exposure
    from experiments.services.exposures import exposures_flush, exposures_forget_seen

    def resolve(user_id):
        return client.post(
            "/api/v1/prompts/resolve",
            {"user_id": user_id, "prompt_type": "support"},
            content_type="application/json",
            **agent_key,
        )

    assert resolve("before-outage").json()["in_experiment"] is True  # buffered in Redis

    private_redis.stop()
    exposures_forget_seen()
    during = [resolve(f"during-{n}") for n in range(3)]
    assert [r.status_code for r in during] == [200, 200, 200]
    assert all(r.json()["in_experiment"] for r in during)
    event_id = str(uuid.uuid4())
    audit = client.post(
        "/api/v1/audit/events",
        {"events": [{"event_id": event_id, "action": "agent.tested"}]},
        content_type="application/json",
        **agent_key,
    )
    assert audit.status_code == 200, audit.content
    metrics = client.post(
        "/api/v1/monitoring/operations",
        {
            "operations": [
                {"operation": "llm.call", "duration_ms": 5, "success": True, "occurred_at": "2026-11-27T12:00:00Z"}
            ]
        },
        content_type="application/json",
        **agent_key,
    )
    assert metrics.status_code < 500, metrics.content
    # Fail-closed groups (auth.*) refuse rather than let an unlimited brute force through.
    token = client.post("/api/v1/auth/token", {"username": "x", "password": "y"}, content_type="application/json")
    assert token.status_code in (401, 429, 503)
    assert "error" in token.json()

    private_redis.start()  # same port, same data: recovery needs no restart of the web process
    assert resolve("after-outage").status_code == 200
    exposures_flush()
    users = set(Exposure.objects.values_list("user_id", flat=True))
    assert {"before-outage", "during-0", "during-1", "during-2", "after-outage"} <= users
    assert AuditEvent.objects.filter(event_id=event_id).count() == 1


# --- Redis crashes (or restarts without persistence) -----------------------------------------------
@pytest.fixture
def volatile_redis(tmp_path):
    """A private Redis without persistence as the shared cache: a restart comes back empty."""
    redis = PrivateRedis(tmp_path, persistent=False)
    redis.start()
    cache_settings = {
        "default": {
            **django_settings.CACHES["default"],
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis.url,
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with override_settings(CACHES=cache_settings):
        yield redis
    redis.stop()


@pytest.fixture
def threaded_exposure_writer(settings):
    """Exposures written by this process's writer thread, as in production, on a long interval so
    they are still pending when Redis goes."""
    from experiments.services.exposures import exposures_forget_seen, exposures_writer_stop

    exposures_writer_stop(timeout=0)
    exposures_forget_seen()
    settings.EXPERIMENTS_EXPOSURE_BACKGROUND_FLUSH = True
    settings.EXPERIMENTS_EXPOSURE_FLUSH_SECONDS = 3600
    yield
    exposures_writer_stop(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_exposures_acknowledged_before_a_redis_restart_without_persistence_are_all_stored(
    transactional_db, volatile_redis, threaded_exposure_writer, running_experiment, agent_key, client
):
    from experiments.models import Exposure
    from experiments.services.exposures import exposures_buffered, exposures_flush

    users = [f"before-crash-{n}" for n in range(5)]
    for user_id in users:
        response = client.post(
            "/api/v1/prompts/resolve",
            {"user_id": user_id, "prompt_type": "support"},
            content_type="application/json",
            **agent_key,
        )
        assert response.status_code == 200, response.content
        assert response.json()["in_experiment"] is True
    assert exposures_buffered() == 5  # acknowledged, not yet in the database

    volatile_redis.shutdown_nosave()
    volatile_redis.start()  # empty

    exposures_flush()
    stored = set(Exposure.objects.filter(experiment__key=running_experiment).values_list("user_id", flat=True))
    assert stored == set(users)


# --- PostgreSQL unreachable, then back -----------------------------------------------------------
@pytest.fixture
def database_behind_proxy(transactional_db):
    """The default connection goes through a proxy the test can cut."""
    with default_database_through_proxy() as proxy:
        yield proxy


@pytest.mark.skipif(not ON_POSTGRESQL, reason="cuts the PostgreSQL connection through a TCP proxy")
def test_an_unreachable_database_is_a_503_envelope_and_recovers_without_restart(database_behind_proxy, user_factory):
    from django.core.wsgi import get_wsgi_application

    from accounts.tokens import token_pair_for

    app = get_wsgi_application()
    analyst = user_factory(role="analyst")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token_pair_for(analyst)['access']}"}
    assert wsgi_call(app, "GET", "/api/v1/experiments/", headers=bearer)[0] == 200

    database_behind_proxy.cut()
    error = assert_envelope(*wsgi_call(app, "GET", "/api/v1/experiments/", headers=bearer), 503)
    assert error["code"] in ("dependency_unavailable", "database_unavailable")
    status, _headers, content = wsgi_call(app, "GET", "/readyz")
    assert status == 503
    assert json.loads(content)["checks"]["database"] == "down"
    assert wsgi_call(app, "GET", "/healthz")[0] == 200

    database_behind_proxy.restore()
    assert wsgi_call(app, "GET", "/api/v1/experiments/", headers=bearer)[0] == 200
    assert wsgi_call(app, "GET", "/readyz")[0] == 200
