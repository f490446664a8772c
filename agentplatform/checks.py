"""The platform's own system checks (production configuration that must not be wrong)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_production_shape(app_configs, **kwargs):
    messages = []
    if settings.PRODUCTION and settings.DEBUG:
        messages.append(Error("DEBUG is on while DJANGO_ENV=production.", id="agentplatform.E001"))
    if settings.PRODUCTION and settings.EMBEDDED_CACHE:
        messages.append(
            Error("Production needs a shared atomic cache (REDIS_URL) for rate limits.", id="agentplatform.E002")
        )
    if settings.BENCH_ENDPOINTS and settings.PRODUCTION:
        messages.append(
            Warning(
                "BENCH_ENDPOINTS=1 exposes benchmark views; use it only for benchmark runs.", id="agentplatform.W001"
            )
        )
    return messages


def _url_views(patterns, prefix=""):
    from django.urls import URLPattern, URLResolver

    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _url_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
            if view is not None:
                yield prefix + str(pattern.pattern), view


@register(Tags.urls)
def check_ratelimit_groups(app_configs, **kwargs):
    """Every ``ratelimit_group`` a view declares has a rate in ``RATE_LIMITS`` (else: a 500 per call)."""
    from django.urls import get_resolver

    messages = []
    for route, view in _url_views(get_resolver().url_patterns):
        group = getattr(view, "ratelimit_group", None)
        if isinstance(group, str) and group not in settings.RATE_LIMITS:
            messages.append(
                Error(
                    f"{view.__module__}.{view.__qualname__} (/{route}) declares ratelimit_group={group!r}, "
                    "which settings.RATE_LIMITS does not define.",
                    hint="Add the group with its rate to _DEFAULT_RATE_LIMITS in agentplatform/settings.py.",
                    id="agentplatform.E003",
                )
            )
    return messages
