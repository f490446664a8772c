import asyncio

import httpx
import pytest
from django.test import override_settings

from agentplatform.http import (
    build_async_client,
    build_client,
    build_mcp_http_client,
    http_timeout,
    mcp_client_options,
)
from agentplatform.request_id import reset_request_id, set_request_id


@pytest.fixture
def request_id():
    token = set_request_id("trace-outbound-1")
    yield "trace-outbound-1"
    reset_request_id(token)


def test_sync_client_sends_the_current_request_id_to_the_upstream(upstream, request_id):
    with build_client() as client:
        client.get(upstream.url + "/anything")
    assert upstream.received[-1]["x-request-id"] == request_id


def test_async_client_sends_the_current_request_id_to_the_upstream(upstream, request_id):
    async def fetch():
        async with build_async_client(base_url=upstream.url) as client:
            await client.get("/anything")

    asyncio.run(fetch())
    assert upstream.received[-1]["x-request-id"] == request_id


def test_one_client_sends_each_calls_own_request_id(upstream):
    with build_client(base_url=upstream.url) as client:
        for value in ("first-id", "second-id"):
            token = set_request_id(value)
            try:
                client.get("/")
            finally:
                reset_request_id(token)
    assert [headers["x-request-id"] for headers in upstream.received] == ["first-id", "second-id"]


def test_no_request_id_header_outside_a_unit_of_work(upstream):
    with build_client() as client:
        client.get(upstream.url)
    assert "x-request-id" not in upstream.received[-1]


@override_settings(HTTP_USER_AGENT="AgentOpsPlatform/test")
def test_clients_identify_the_platform(upstream):
    with build_client() as client:
        client.get(upstream.url)
    assert upstream.received[-1]["user-agent"] == "AgentOpsPlatform/test"


@override_settings(HTTP_CONNECT_TIMEOUT=1.5, HTTP_READ_TIMEOUT=7, HTTP_WRITE_TIMEOUT=8, HTTP_POOL_TIMEOUT=2)
def test_clients_get_explicit_timeouts_from_settings():
    with build_client() as client:
        assert client.timeout == httpx.Timeout(connect=1.5, read=7, write=8, pool=2)


@override_settings(HTTP_CONNECT_TIMEOUT=1.5, HTTP_POOL_TIMEOUT=2)
def test_a_number_bounds_read_and_write_and_keeps_connect_short():
    with build_client(timeout=30) as client:
        assert client.timeout == httpx.Timeout(connect=1.5, read=30, write=30, pool=2)


def test_unbounded_timeouts_are_refused():
    with pytest.raises(ValueError, match="bound every phase"):
        build_client(timeout=httpx.Timeout(None))


def test_http_timeout_overrides_one_phase():
    assert http_timeout(read=42).read == 42


def test_caller_hooks_run_after_the_request_id_hook(upstream, request_id):
    seen = []
    with build_client(event_hooks={"request": [lambda request: seen.append(request.headers["X-Request-ID"])]}) as c:
        c.get(upstream.url)
    assert seen == [request_id]


def test_mcp_options_carry_timeouts_and_the_request_id(request_id):
    options = mcp_client_options(timeout=4, sse_read_timeout=20)
    assert options["timeout"] == 4
    assert options["sse_read_timeout"] == 20
    assert options["headers"]["X-Request-ID"] == request_id
    assert "User-Agent" in options["headers"]


def test_mcp_http_client_sends_the_request_id(upstream, request_id):
    async def fetch():
        async with build_mcp_http_client() as client:
            await client.get(upstream.url)

    asyncio.run(fetch())
    assert upstream.received[-1]["x-request-id"] == request_id
