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


@register(Tags.security, deploy=True)
def check_security_configuration(app_configs, **kwargs):
    """Authentication and rate-limit configuration that production must not get wrong.

    Deploy-tagged (``check --deploy``) and run again when a production web process starts
    (``agentplatform.wsgi``/``asgi`` through :func:`startup_checks`). The JWT key rules are the
    ones ``settings.py`` enforces at import in production; here they also cover ``check --deploy``
    of a staging configuration that still uses the development key.
    """
    messages = []
    jwt = settings.SIMPLE_JWT
    key = jwt.get("SIGNING_KEY") or ""
    if len(key) < 32 or key == settings.SECRET_KEY or key == getattr(settings, "_INSECURE_JWT_KEY", None):
        messages.append(
            Error(
                "The JWT signing key must be set (JWT_SIGNING_KEY), at least 32 characters and differ from SECRET_KEY.",
                id="agentplatform.E005",
            )
        )
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if settings.RATELIMIT_ENABLE and not backend.endswith(("RedisCache", "django_redis.cache.RedisCache")):
        messages.append(
            Error(
                f"Rate limits need a shared cache with atomic increments (Redis); the default cache is {backend}.",
                hint="Set REDIS_URL.",
                id="agentplatform.E006",
            )
        )
    rotation = jwt.get("ROTATE_REFRESH_TOKENS") and jwt.get("BLACKLIST_AFTER_ROTATION")
    if rotation and "rest_framework_simplejwt.token_blacklist" not in settings.INSTALLED_APPS:
        messages.append(
            Error(
                "Refresh-token rotation blacklists used tokens, but rest_framework_simplejwt.token_blacklist "
                "is not installed: a stolen refresh token would stay usable.",
                id="agentplatform.E007",
            )
        )
    if settings.PRODUCTION and not getattr(settings, "TRUSTED_PROXY_COUNT_EXPLICIT", True):
        messages.append(
            Error(
                "TRUSTED_PROXY_COUNT must be set explicitly in production (0 when clients connect directly).",
                id="agentplatform.E004",
            )
        )
    return messages


def startup_checks() -> None:
    """In production, refuse to start a web process whose security configuration is wrong."""
    from django.core.checks import ERROR, run_checks
    from django.core.exceptions import ImproperlyConfigured

    if not settings.PRODUCTION:
        return
    errors = [
        message
        for message in run_checks(tags=[Tags.security], include_deployment_checks=True)
        if message.level >= ERROR and not message.is_silenced()
    ]
    if errors:
        raise ImproperlyConfigured("Refusing to start: " + "; ".join(f"{m.id}: {m.msg}" for m in errors))


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
def check_throttle_scopes(app_configs, **kwargs):
    """Every ``throttle_scope`` a view declares has a rate in ``RATE_LIMITS`` (else: a 500 per call)."""
    from django.urls import get_resolver

    messages = []
    for route, view in _url_views(get_resolver().url_patterns):
        group = getattr(view, "throttle_scope", None)
        if isinstance(group, str) and group not in settings.RATE_LIMITS:
            messages.append(
                Error(
                    f"{view.__module__}.{view.__qualname__} (/{route}) declares throttle_scope={group!r}, "
                    "which settings.RATE_LIMITS does not define.",
                    hint="Add the group with its rate to _DEFAULT_RATE_LIMITS in agentplatform/settings.py.",
                    id="agentplatform.E003",
                )
            )
    return messages
