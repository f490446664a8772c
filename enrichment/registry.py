"""The configured providers, by kind; a kind with several providers is a fallback chain."""

from __future__ import annotations

from django.conf import settings

from enrichment.providers.base import Provider
from enrichment.providers.mcp import McpToolProvider
from enrichment.providers.search import SearxngSearchProvider
from enrichment.providers.supadata import SupadataProvider
from enrichment.providers.web import WebPageProvider
from enrichment.providers.youtube import YoutubeTranscriptProvider

KINDS = ("web", "search", "supadata", "youtube", "mcp")


def provider_chains() -> dict[str, list[Provider]]:
    """Every provider kind -> its providers in the order they are tried (read from settings)."""
    ttl = settings.ENRICHMENT_CACHE_TTL
    supadata = {"base_url": settings.SUPADATA_BASE_URL, "api_key": settings.SUPADATA_API_KEY}
    search = [
        SearxngSearchProvider(
            name="search.primary",
            base_url=settings.SEARCH_BASE_URL,
            timeout=settings.ENRICHMENT_SEARCH_TIMEOUT,
            cache_ttl=ttl["search"],
        ),
    ]
    if settings.SEARCH_FALLBACK_BASE_URL:
        search.append(
            SearxngSearchProvider(
                name="search.fallback",
                base_url=settings.SEARCH_FALLBACK_BASE_URL,
                timeout=settings.ENRICHMENT_SEARCH_TIMEOUT,
                cache_ttl=ttl["search"],
            )
        )
    return {
        "web": [WebPageProvider(name="web", timeout=settings.ENRICHMENT_WEB_TIMEOUT, cache_ttl=ttl["web"])],
        "search": search,
        "supadata": [
            SupadataProvider(
                name="supadata", timeout=settings.ENRICHMENT_SUPADATA_TIMEOUT, cache_ttl=ttl["supadata"], **supadata
            )
        ],
        "youtube": [
            YoutubeTranscriptProvider(
                name="youtube", timeout=settings.ENRICHMENT_SUPADATA_TIMEOUT, cache_ttl=ttl["youtube"], **supadata
            )
        ],
        "mcp": [
            McpToolProvider(
                name="mcp",
                servers=settings.MCP_SERVERS,
                tools_ttl=ttl["mcp_tools"],
                timeout=settings.ENRICHMENT_MCP_TIMEOUT,
                cache_ttl=ttl["mcp"],
            )
        ],
    }


def all_providers() -> list[Provider]:
    return [provider for chain in provider_chains().values() for provider in chain]
