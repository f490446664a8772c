"""Web pages: fetched through the SSRF guard, main text extracted with trafilatura."""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings

from agentplatform.http import build_async_client, http_timeout
from enrichment.extract import extract_article
from enrichment.fetch import HTML_TYPES, TEXT_TYPES, fetch_document, guarded_transport
from enrichment.providers.base import Provider, ProviderRequest
from enrichment.ssrf import UrlGuard


class WebPageProvider(Provider):
    kind = "web"

    def __init__(self, *, guard: UrlGuard | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.guard = guard

    def describe(self) -> dict[str, Any]:
        return {"max_bytes": settings.ENRICHMENT_PAGE_MAX_BYTES, "max_redirects": settings.ENRICHMENT_MAX_REDIRECTS}

    async def run(self, request: ProviderRequest, *, deadline: float) -> dict[str, Any]:
        guard = self.guard or UrlGuard.from_settings()
        async with build_async_client(
            timeout=http_timeout(connect=min(self.timeout, 3.0), read=self.timeout),
            transport=guarded_transport(guard=guard),
        ) as client:
            document = await fetch_document(
                client,
                request.target,
                guard=guard,
                accept=HTML_TYPES + TEXT_TYPES,
                max_bytes=settings.ENRICHMENT_PAGE_MAX_BYTES,
                max_redirects=settings.ENRICHMENT_MAX_REDIRECTS,
            )
        if document.content_type in TEXT_TYPES:
            return {"url": document.url, "title": "", "text": document.text}
        # Extraction is CPU-bound (lxml): off the event loop so other parts keep running.
        extracted = await asyncio.to_thread(extract_article, document.text, url=document.url)
        return {"url": document.url, "title": extracted.title, "text": extracted.text}
