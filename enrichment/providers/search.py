"""Web search through a SearxNG-style JSON API: ``GET {base}/search?q=...&format=json``."""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

from agentplatform.http import build_async_client, http_timeout
from enrichment.fetch import tls_context
from enrichment.providers.base import (
    UPSTREAM_UNAVAILABLE,
    Provider,
    ProviderError,
    ProviderRequest,
    error_for_status,
    transport_error,
)


class SearxngSearchProvider(Provider):
    kind = "search"

    def __init__(self, *, base_url: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def is_configured(self) -> bool:
        return bool(self.base_url)

    def describe(self) -> dict[str, Any]:
        return {"host": httpx.URL(self.base_url).host if self.base_url else None}

    async def run(self, request: ProviderRequest, *, deadline: float) -> dict[str, Any]:
        async with build_async_client(
            base_url=self.base_url,
            timeout=http_timeout(connect=min(self.timeout, 3.0), read=self.timeout),
            verify=tls_context(),
        ) as client:
            try:
                response = await client.get("/search", params={"q": request.target, "format": "json"})
            except httpx.HTTPError as exc:
                raise transport_error(exc, what="The search service") from None
        error = error_for_status(response, what="The search service")
        if error:
            raise error
        try:
            results = response.json().get("results", [])
        except (ValueError, AttributeError):
            raise ProviderError(UPSTREAM_UNAVAILABLE, "The search service did not answer JSON.") from None
        hits = [
            {
                "url": str(item.get("url", "")),
                "title": str(item.get("title", "")),
                "text": str(item.get("content", "") or ""),
            }
            for item in results
            if isinstance(item, dict) and item.get("url")
        ]
        return {"query": request.target, "results": hits[: settings.SEARCH_MAX_RESULTS]}
