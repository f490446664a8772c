"""The DRF throttle behind every API view's ``ratelimit_group``.

In ``REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]``, so DRF runs it after authentication and the
permission checks, with the caller's identity known:

    class ResolveView(APIView):
        permission_classes = [Requires("experiments.resolve_prompt")]
        ratelimit_group = "prompts.resolve"

A view without the attribute (or with ``ratelimit_group = None``) is not limited. A view whose
group depends on the request (a viewset with read and write actions) defines
``get_ratelimit_group(request) -> str | None`` instead.
"""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle

from agentplatform.ratelimit import enforce, identity_key


def view_ratelimit_group(request, view) -> str | None:
    getter = getattr(view, "get_ratelimit_group", None)
    if callable(getter):
        return getter(request)
    return getattr(view, "ratelimit_group", None)


class GroupRateThrottle(BaseThrottle):
    """Counts the request against its view's group; over the limit raises ``RateLimited`` (429)."""

    def allow_request(self, request, view) -> bool:
        group = view_ratelimit_group(request, view)
        if group:
            # Raises the platform's own errors (429 with Retry-After, or 503 when the cache is down
            # and the group fails closed) so the envelope carries them as they are.
            enforce(group, identity_key(request))
        return True
