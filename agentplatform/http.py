"""The one place outbound HTTP clients are built.

Every client has explicit timeouts (httpx's default is 5 s for everything, which is neither
explicit nor right for every provider), identifies the platform with a User-Agent, and sends the
current request id as ``X-Request-ID`` on every request it makes, through an event hook that reads
the context variable at send time (so one long-lived client serves many requests correctly).

    client = build_async_client(base_url=settings.SEARCH_URL, timeout=http_timeout(read=5))
    response = await get_breaker("search").call_async(client.get, "/q", params={"q": text})

The mcp SDK builds its own clients (on ``httpx2``); ``mcp_client_options()`` and
``build_mcp_http_client()`` give it the same timeouts and headers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
from django.conf import settings

from agentplatform.request_id import HEADER as REQUEST_ID_HEADER
from agentplatform.request_id import get_request_id

TimeoutSpec = httpx.Timeout | float | None


def http_timeout(
    *,
    connect: float | None = None,
    read: float | None = None,
    write: float | None = None,
    pool: float | None = None,
) -> httpx.Timeout:
    """An ``httpx.Timeout`` from the ``HTTP_*_TIMEOUT`` settings, with any phase overridden (seconds)."""
    return httpx.Timeout(
        connect=settings.HTTP_CONNECT_TIMEOUT if connect is None else connect,
        read=settings.HTTP_READ_TIMEOUT if read is None else read,
        write=settings.HTTP_WRITE_TIMEOUT if write is None else write,
        pool=settings.HTTP_POOL_TIMEOUT if pool is None else pool,
    )


def _resolve_timeout(timeout: TimeoutSpec) -> httpx.Timeout:
    if timeout is None:
        return http_timeout()
    if isinstance(timeout, httpx.Timeout):
        if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
            # An unbounded phase is how a slow upstream stalls a worker forever.
            raise ValueError("Outbound HTTP timeouts must bound every phase (connect, read, write, pool).")
        return timeout
    seconds = float(timeout)
    # A single number bounds the read; connecting and waiting for a pooled connection keep their
    # (shorter) configured bounds so a dead host is noticed quickly.
    return http_timeout(read=seconds, write=seconds)


def default_headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers every outbound request carries (User-Agent), plus ``extra``."""
    headers = {"User-Agent": settings.HTTP_USER_AGENT}
    headers.update(extra or {})
    return headers


def _stamp_request_id(request) -> None:
    request_id = get_request_id()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


def _sync_request_hook(request: httpx.Request) -> None:
    _stamp_request_id(request)


async def _async_request_hook(request: httpx.Request) -> None:
    _stamp_request_id(request)


def _hooks(own: Callable, extra: Mapping[str, list[Callable]] | None) -> dict[str, list[Callable]]:
    hooks: dict[str, list[Callable]] = {"request": [own], "response": []}
    for event, functions in (extra or {}).items():
        hooks.setdefault(event, []).extend(functions)
    return hooks


def build_client(
    *,
    base_url: str = "",
    timeout: TimeoutSpec = None,
    headers: Mapping[str, str] | None = None,
    event_hooks: Mapping[str, list[Callable]] | None = None,
    follow_redirects: bool = False,
    **options: Any,
) -> httpx.Client:
    """A synchronous ``httpx.Client`` with the platform's timeouts, User-Agent and request-id hook.

    ``timeout`` is an ``httpx.Timeout`` bounding every phase or a number of seconds for read/write;
    other keyword arguments (``transport``, ``limits``, ``auth``, ``verify``...) go to httpx.
    Redirects are not followed unless asked: a caller that checks where it connects (the SSRF
    guard) must see each hop.
    """
    return httpx.Client(
        base_url=base_url,
        timeout=_resolve_timeout(timeout),
        headers=default_headers(headers),
        event_hooks=_hooks(_sync_request_hook, event_hooks),
        follow_redirects=follow_redirects,
        trust_env=False,
        **options,
    )


def build_async_client(
    *,
    base_url: str = "",
    timeout: TimeoutSpec = None,
    headers: Mapping[str, str] | None = None,
    event_hooks: Mapping[str, list[Callable]] | None = None,
    follow_redirects: bool = False,
    **options: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` like ``build_client``; extra event hooks must be coroutines."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=_resolve_timeout(timeout),
        headers=default_headers(headers),
        event_hooks=_hooks(_async_request_hook, event_hooks),
        follow_redirects=follow_redirects,
        trust_env=False,
        **options,
    )


# --- the mcp SDK (it builds its own clients, on httpx2) -------------------------------------------


def mcp_client_options(
    *, timeout: float | None = None, sse_read_timeout: float | None = None, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for the mcp SDK's own client factories (e.g. ``sse_client(url, **options)``).

    The headers carry the current request id, so call this inside the unit of work (the request
    or task) that opens the MCP session.
    """
    merged = default_headers(headers)
    request_id = get_request_id()
    if request_id:
        merged[REQUEST_ID_HEADER] = request_id
    return {
        "headers": merged,
        "timeout": settings.HTTP_READ_TIMEOUT if timeout is None else timeout,
        "sse_read_timeout": settings.MCP_SSE_READ_TIMEOUT if sse_read_timeout is None else sse_read_timeout,
    }


def build_mcp_http_client(
    headers: Mapping[str, str] | None = None,
    timeout: Any = None,
    auth: Any = None,
):
    """An ``httpx2.AsyncClient`` for the mcp SDK with the platform's timeouts, headers and request-id hook.

    Its signature is the SDK's ``McpHttpClientFactory``, so it can be passed as
    ``httpx_client_factory=build_mcp_http_client``, or called and passed as
    ``streamable_http_client(url, http_client=build_mcp_http_client())``.
    """
    import httpx2  # the mcp SDK's HTTP library; imported here so the platform does not need it

    async def stamp(request) -> None:
        _stamp_request_id(request)

    if timeout is None:
        timeout = httpx2.Timeout(
            connect=settings.HTTP_CONNECT_TIMEOUT,
            # MCP servers hold response streams open: reads wait for the next event, not the
            # whole answer, so the read bound is the SSE one.
            read=settings.MCP_SSE_READ_TIMEOUT,
            write=settings.HTTP_WRITE_TIMEOUT,
            pool=settings.HTTP_POOL_TIMEOUT,
        )
    return httpx2.AsyncClient(
        headers=default_headers(headers),
        timeout=timeout,
        auth=auth,
        event_hooks={"request": [stamp]},
        trust_env=False,
    )
