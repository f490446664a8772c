"""System checks: enrichment configuration that would otherwise fail on the first request."""

from __future__ import annotations

import httpx
from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def enrichment_settings_check(app_configs, **kwargs):
    from enrichment.ssrf import AllowList

    problems = []
    try:
        AllowList.parse(settings.ENRICHMENT_ALLOWED_PRIVATE)
    except ValueError as exc:
        problems.append(Error(str(exc), id="enrichment.E001"))
    if settings.ENRICHMENT_DEFAULT_DEADLINE_MS > settings.ENRICHMENT_MAX_DEADLINE_MS:
        problems.append(
            Error("ENRICHMENT_DEFAULT_DEADLINE_MS exceeds ENRICHMENT_MAX_DEADLINE_MS.", id="enrichment.E002")
        )
    configured = {
        "SEARCH_BASE_URL": settings.SEARCH_BASE_URL,
        "SEARCH_FALLBACK_BASE_URL": settings.SEARCH_FALLBACK_BASE_URL,
        "SUPADATA_BASE_URL": settings.SUPADATA_BASE_URL,
        **{f"MCP_SERVERS[{name}]": url for name, url in settings.MCP_SERVERS.items()},
    }
    for name, url in configured.items():
        if not url:
            continue
        try:
            scheme = httpx.URL(url).scheme
        except httpx.InvalidURL:
            scheme = ""
        if scheme not in ("http", "https"):
            problems.append(Error(f"{name}={url!r} is not an http(s) URL.", id="enrichment.E003"))
        elif scheme == "http" and not settings.DEBUG and name.startswith(("SUPADATA", "MCP")):
            problems.append(
                Warning(f"{name} uses plain http: credentials and content travel unencrypted.", id="enrichment.W001")
            )
    return problems
