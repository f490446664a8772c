"""MCP tools over streamable HTTP against a local server built with the same SDK (mcp 2.x)."""

from __future__ import annotations

import socket
import threading
from unittest import mock

import pytest
import uvicorn
from mcp import Client
from mcp.server.mcpserver import MCPServer

from tests.enrichment.conftest import wait_until

URL = "/api/v1/enrichment/context"


class HeaderRecorder:
    """ASGI wrapper keeping each request's headers (to see the request id arrive)."""

    def __init__(self, app):
        self.app = app
        self.headers: list[dict[str, str]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def mcp_server():
    server = MCPServer("test-tools")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def lookup(term: str) -> str:
        """Look a term up in the glossary."""
        return {"srm": "sample ratio mismatch"}.get(term, "unknown")

    app = HeaderRecorder(server.streamable_http_app(stateless_http=True, json_response=True))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    assert wait_until(lambda: uv.started, timeout=10)
    yield {"url": f"http://127.0.0.1:{port}/mcp", "recorder": app}
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def configured(settings, mcp_server):
    settings.MCP_SERVERS = {"tools": mcp_server["url"]}
    return mcp_server


def post(client, body, **extra):
    response = client.post(URL, body, format="json", **extra)
    assert response.status_code == 200
    return response.json()


def test_tool_call_returns_its_content(agent_client, configured):
    body = post(agent_client, {"mcp": [{"server": "tools", "tool": "add", "arguments": {"a": 2, "b": 40}}]})
    assert body["errors"] == []
    [result] = body["mcp"]
    assert (result["server"], result["tool"], result["is_error"], result["provider"]) == ("tools", "add", False, "mcp")
    assert result["content"] == [{"type": "text", "text": "42"}]
    assert result["structured_content"] == {"result": 42}


def test_tools_list_is_cached_between_calls(agent_client, configured):
    with mock.patch.object(Client, "list_tools", autospec=True, side_effect=Client.list_tools) as list_tools:
        post(agent_client, {"mcp": [{"server": "tools", "tool": "lookup", "arguments": {"term": "srm"}}]})
        body = post(agent_client, {"mcp": [{"server": "tools", "tool": "lookup", "arguments": {"term": "srm"}}]})
    assert body["mcp"][0]["content"][0]["text"] == "sample ratio mismatch"
    assert list_tools.call_count == 1


def test_unknown_tool_is_a_permanent_error(agent_client, configured):
    body = post(agent_client, {"mcp": [{"server": "tools", "tool": "rm_rf", "arguments": {}}]})
    assert [(e["source"], e["target"], e["code"], e["transient"]) for e in body["errors"]] == [
        ("mcp", "tools/rm_rf", "unknown_tool", False)
    ]


def test_unknown_server_is_reported_not_configured(agent_client, configured):
    body = post(agent_client, {"mcp": [{"server": "elsewhere", "tool": "add"}]})
    assert body["errors"][0]["code"] == "not_configured"


def test_requests_to_the_mcp_server_carry_the_request_id(agent_client, configured):
    configured["recorder"].headers.clear()
    post(
        agent_client,
        {"mcp": [{"server": "tools", "tool": "add", "arguments": {"a": 1, "b": 1}}]},
        HTTP_X_REQUEST_ID="req-mcp-7",
    )
    assert configured["recorder"].headers
    assert all(h.get("x-request-id") == "req-mcp-7" for h in configured["recorder"].headers)


def test_unreachable_mcp_server_is_a_transient_error(agent_client, settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.MCP_SERVERS = {"down": f"http://127.0.0.1:{closed_port}/mcp"}
    body = post(agent_client, {"mcp": [{"server": "down", "tool": "add"}]})
    assert (body["errors"][0]["code"], body["errors"][0]["transient"]) == ("upstream_unavailable", True)
