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
