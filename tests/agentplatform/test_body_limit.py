"""Request body limits: declared length, bytes actually read, chunked bodies, per-view ceilings."""

import io
import json

import pytest
from django.test import Client

URLS = "tests.agentplatform.urls_cross"


@pytest.fixture(autouse=True)
def _urls(settings):
    settings.ROOT_URLCONF = URLS
    settings.MAX_REQUEST_BYTES = 2048


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def _json_of_size(size: int) -> bytes:
    body = json.dumps({"text": ""}).encode()
    return json.dumps({"text": "x" * (size - len(body))}).encode()


def test_a_body_at_the_limit_is_accepted(client):
    response = client.post("/api/v1/test/echo", data=_json_of_size(2048), content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"keys": 1}


def test_a_body_one_byte_over_the_limit_is_refused(client):
    response = client.post("/api/v1/test/echo", data=_json_of_size(2049), content_type="application/json")
    assert response.status_code == 413


def test_a_view_can_raise_its_own_limit(client):
    body = _json_of_size(6000)
    assert client.post("/api/v1/test/batch-echo", data=body, content_type="application/json").status_code == 200
    too_big = _json_of_size(8193)
    assert client.post("/api/v1/test/batch-echo", data=too_big, content_type="application/json").status_code == 413


def test_no_view_goes_past_the_ten_mib_ceiling(client, settings):
    declared = str(10 * 1024 * 1024 + 1)
    response = client.generic(
        "POST", "/api/v1/test/greedy-echo", data=b"{}", content_type="application/json", CONTENT_LENGTH=declared
    )
    assert response.status_code == 413
    assert str(settings.MAX_REQUEST_BYTES_CEILING) in response.json()["error"]["message"]


def test_the_declared_length_is_checked_before_reading(client):
    class Unreadable(io.RawIOBase):
        def read(self, size=-1):
            raise AssertionError("the body must not be read")

    response = client.generic(
        "POST",
        "/api/v1/test/echo",
        content_type="application/json",
        CONTENT_LENGTH="999999",
        **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413


def test_a_chunked_body_over_the_limit_is_refused_by_bytes_read(client):
    # As a WSGI server presents a chunked request: no Content-Length, the de-chunked body in wsgi.input.
    response = client.generic(
        "POST",
        "/api/v1/test/echo",
        content_type="application/json",
        CONTENT_LENGTH="",
        CONTENT_TYPE="application/json",  # the test client sets it only along with a body
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(_json_of_size(100_000))},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_chunked_body_under_the_limit_is_parsed(client):
    response = client.generic(
        "POST",
        "/api/v1/test/echo",
        content_type="application/json",
        CONTENT_LENGTH="",
        CONTENT_TYPE="application/json",  # the test client sets it only along with a body
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(b'{"a": 1, "b": 2}')},
    )
    assert response.status_code == 200
    assert response.json() == {"keys": 2}


def test_bytes_read_past_the_limit_are_refused_even_if_the_length_lied(rf, settings):
    from django.core.exceptions import RequestDataTooBig

    from agentplatform.middleware import RequestBodyLimitMiddleware
    from tests.agentplatform.urls_cross import EchoView

    request = rf.post("/api/v1/test/echo", data=b"{}", content_type="application/json")
    request._stream = io.BytesIO(_json_of_size(5000))  # more bytes than the (small) declared length
    RequestBodyLimitMiddleware(lambda r: None).process_view(request, EchoView.as_view(), (), {})
    with pytest.raises(RequestDataTooBig):
        request.read()


def test_a_non_numeric_length_is_a_400(client):
    response = client.generic(
        "POST", "/api/v1/test/echo", data=b"{}", content_type="application/json", CONTENT_LENGTH="lots"
    )
    assert response.status_code == 400


def test_plain_django_views_can_declare_a_limit_too(client):
    assert client.post("/api/v1/test/plain", data=b"x" * 4000, content_type="text/plain").status_code == 200
    assert client.post("/api/v1/test/plain", data=b"x" * 4097, content_type="text/plain").status_code == 413
