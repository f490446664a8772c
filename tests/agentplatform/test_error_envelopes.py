"""Every error status an API caller can meet comes back as the one envelope, with the request id."""

import json
import logging

import pytest
from django.test import Client

URLS = "tests.agentplatform.urls_cross"
ENVELOPE_KEYS = {"code", "message", "details", "request_id"}


@pytest.fixture(autouse=True)
def _urls(settings):
    settings.ROOT_URLCONF = URLS
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "test.tiny": "1/m", "test.twenty": "20/m", "auth.test": "2/m"}


@pytest.fixture
def client():
    # Like a real server: exceptions become responses instead of being re-raised into the test.
    return Client(raise_request_exception=False)


def _error(response, status: int, code: str, request_id: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == ENVELOPE_KEYS
    assert error["code"] == code
    assert error["request_id"] == request_id
    assert response["X-Request-ID"] == request_id
    return error


def test_malformed_json_is_a_400_envelope(client):
    response = client.post(
        "/api/v1/test/echo", data='{"unterminated": ', content_type="application/json", HTTP_X_REQUEST_ID="r-400"
    )
    _error(response, 400, "malformed_request", "r-400")


def test_missing_credentials_are_a_401_envelope_with_a_challenge(client):
    response = client.get("/api/v1/test/protected", HTTP_X_REQUEST_ID="r-401")
    _error(response, 401, "not_authenticated", "r-401")
    assert response["WWW-Authenticate"]


@pytest.mark.django_db  # refusals are audited
def test_denied_permission_is_a_403_envelope(client):
    response = client.get("/api/v1/test/forbidden", HTTP_AUTHORIZATION="Test-Key 1", HTTP_X_REQUEST_ID="r-403")
    _error(response, 403, "permission_denied", "r-403")


def test_unknown_path_is_a_404_envelope(client):
    _error(client.get("/api/v1/test/nowhere", HTTP_X_REQUEST_ID="r-404a"), 404, "not_found", "r-404a")


def test_missing_object_is_a_404_envelope(client):
    _error(client.get("/api/v1/test/missing", HTTP_X_REQUEST_ID="r-404b"), 404, "not_found", "r-404b")


def test_wrong_method_is_a_405_envelope(client):
    response = client.delete("/api/v1/test/echo", HTTP_X_REQUEST_ID="r-405")
    _error(response, 405, "method_not_allowed", "r-405")


def test_oversize_body_is_a_413_envelope(client, settings):
    settings.MAX_REQUEST_BYTES = 2048
    body = json.dumps({"text": "x" * 4096})
    response = client.post("/api/v1/test/echo", data=body, content_type="application/json", HTTP_X_REQUEST_ID="r-413")
    error = _error(response, 413, "payload_too_large", "r-413")
    assert "2048" in error["message"]


def test_non_json_content_type_is_a_415_envelope(client):
    response = client.post(
        "/api/v1/test/echo", data="a=1&b=2", content_type="application/x-www-form-urlencoded", HTTP_X_REQUEST_ID="r-415"
    )
    _error(response, 415, "unsupported_media_type", "r-415")


def test_too_many_requests_is_a_429_envelope_with_retry_after(client):
    client.get("/api/v1/test/tiny")
    response = client.get("/api/v1/test/tiny", HTTP_X_REQUEST_ID="r-429")
    _error(response, 429, "rate_limited", "r-429")
    assert int(response["Retry-After"]) >= 1


def test_unexpected_exception_is_a_500_envelope_without_internals(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/api/v1/test/crash", HTTP_X_REQUEST_ID="r-500")
    error = _error(response, 500, "internal_error", "r-500")
    assert "hunter2" not in response.content.decode()
    assert error["details"] is None
    tracebacks = [record for record in caplog.records if record.exc_info and record.levelno >= logging.ERROR]
    assert tracebacks, "the traceback must be logged"
    assert all(record.request_id == "r-500" for record in tracebacks)
    assert any("hunter2" in str(record.exc_info[1]) for record in tracebacks)


@pytest.fixture
def failing_middleware(settings):
    settings.MIDDLEWARE = [
        settings.MIDDLEWARE[0],
        "tests.agentplatform.urls_cross.FailingMiddleware",
        *settings.MIDDLEWARE[1:],
    ]


@pytest.mark.usefixtures("failing_middleware")
def test_unexpected_exception_in_middleware_is_a_500_envelope(client, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/test/unlimited", HTTP_X_FAIL="crash", HTTP_X_REQUEST_ID="r-mw-500")
    _error(response, 500, "internal_error", "r-mw-500")
    assert "middleware internals" not in response.content.decode()
    assert any(record.request_id == "r-mw-500" and record.exc_info for record in caplog.records)


@pytest.mark.usefixtures("failing_middleware")
def test_platform_error_raised_in_middleware_keeps_its_status(client):
    response = client.get("/api/v1/test/unlimited", HTTP_X_FAIL="limit", HTTP_X_REQUEST_ID="r-mw-429")
    _error(response, 429, "rate_limited", "r-mw-429")
    assert response["Retry-After"] == "17"


@pytest.mark.usefixtures("failing_middleware")
def test_middleware_errors_outside_the_api_keep_django_pages(client):
    response = client.get("/admin/login/", HTTP_X_FAIL="crash")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert response["X-Request-ID"]


def test_log_records_inside_a_request_carry_its_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="tests.cross"):
        client.get("/api/v1/test/crash", HTTP_X_REQUEST_ID="r-log")
    records = [record for record in caplog.records if record.getMessage() == "about to crash"]
    assert records and records[0].request_id == "r-log"


def test_unacceptable_accept_header_is_a_406_envelope(client):
    response = client.get("/api/v1/test/unlimited", HTTP_ACCEPT="text/csv", HTTP_X_REQUEST_ID="r-406")
    _error(response, 406, "not_acceptable", "r-406")
