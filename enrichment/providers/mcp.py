"""MCP tools over streamable HTTP with the official ``mcp`` SDK (2.x client API).

Servers are operator configuration (``MCP_SERVERS`` name -> URL). Each call opens a session,
checks the tool against the server's ``tools/list`` (cached in the shared cache) and calls it,
all bounded by the provider's timeout and the call's deadline. The SDK builds its clients on
``httpx2``; ``agentplatform.http.build_mcp_http_client`` gives them the platform's timeouts,
User-Agent and request-id header.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx2
from django.conf import settings
from django.core.cache import cache
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agentplatform.http import build_mcp_http_client
from enrichment.providers.base import (
    NOT_CONFIGURED,
    TIMEOUT,
    UNKNOWN_TOOL,
    UPSTREAM_UNAVAILABLE,
    Provider,
    ProviderError,
    ProviderRequest,
)


class McpToolProvider(Provider):
    kind = "mcp"

    def __init__(self, *, servers: dict[str, str], tools_ttl: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.servers = dict(servers)
        self.tools_ttl = tools_ttl

    def is_configured(self) -> bool:
        return bool(self.servers)

    def describe(self) -> dict[str, Any]:
        return {"servers": sorted(self.servers)}

    async def run(self, request: ProviderRequest, *, deadline: float) -> dict[str, Any]:
        server = request.params["server"]
        tool = request.params["tool"]
        url = self.servers.get(server)
        if not url:
            raise ProviderError(NOT_CONFIGURED, f"No MCP server named {server!r} is configured.")
        remaining = max(0.05, min(self.timeout, deadline - time.monotonic()))
        timeout = httpx2.Timeout(remaining, connect=min(remaining, 3.0))
        try:
            async with (
                build_mcp_http_client(timeout=timeout) as http,
                Client(
                    streamable_http_client(url, http_client=http, terminate_on_close=False),
                    read_timeout_seconds=remaining,
                    cache=None,
                ) as client,
            ):
                names = await self._tool_names(client, server=server, url=url)
                # Decided inside, raised outside: the SDK's task groups would wrap it in a group.
                result = await client.call_tool(tool, request.params.get("arguments") or {}) if tool in names else None
        except (TimeoutError, httpx2.TimeoutException) as exc:
            raise ProviderError(TIMEOUT, f"MCP server {server!r} did not answer in time.") from exc
        # The SDK surfaces transport failures as several exception types (including exception
        # groups from its task groups); for the caller they all mean "this server is not working".
        except Exception as exc:
            raise ProviderError(UPSTREAM_UNAVAILABLE, f"MCP server {server!r} failed: {_describe(exc)}.") from exc
        if result is None:
            raise ProviderError(UNKNOWN_TOOL, f"MCP server {server!r} has no tool {tool!r}.")
        return {
            "server": server,
            "tool": tool,
            "content": [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in result.content],
            "structured_content": result.structured_content,
            "is_error": bool(result.is_error),
        }

    async def _tool_names(self, client: Client, *, server: str, url: str) -> set[str]:
        key = "enrichment:mcp-tools:" + hashlib.sha256(f"{server}\0{url}".encode()).hexdigest()[:32]
        names = await asyncio.to_thread(cache.get, key)
        if names is None:
            names, cursor = [], None
            while True:  # tools/list is paginated
                listing = await client.list_tools(cursor=cursor)
                names.extend(t.name for t in listing.tools)
                cursor = listing.next_cursor
                if not cursor:
                    break
            if self.tools_ttl:
                await asyncio.to_thread(cache.set, key, names, self.tools_ttl)
        return set(names)


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc.__class__.__name__


def configured_servers() -> dict[str, str]:
    return dict(settings.MCP_SERVERS)
