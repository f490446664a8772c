"""The DRF throttle behind every API view's ``throttle_scope``.

In ``REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]``, so DRF runs it after authentication and the
permission checks, with the caller's identity known:

    class ResolveView(APIView):
        permission_classes = [Requires("experiments.resolve_prompt")]
        throttle_scope = "prompts.resolve"

A view without the attribute (or with ``throttle_scope = None``) is not limited. A view whose scope
depends on the request (reads and writes on one URL) makes ``throttle_scope`` a property reading
``self.request``.

It is DRF's ``ScopedRateThrottle``: its scope attribute, its rate lookup (``get_rate``, here from
``settings.RATE_LIMITS``, read per request so overridden settings apply) and its protocol
(``allow_request`` / ``wait``). What it counts differs: the caller's identity
(``agentplatform.ratelimit.identity_key``: API key, else user, else client IP) in
``agentplatform.ratelimit``'s fixed windows, with one atomic Redis script and leases, instead of
DRF's list of timestamps per user (a read and a write that race). A refused request makes DRF
raise ``Throttled`` with ``wait()`` seconds; the exception handler answers it with the 429
envelope and ``Retry-After``.
"""

from __future__ import annotations

from rest_framework.throttling import ScopedRateThrottle

from agentplatform import counters, ratelimit


class ScopedRateLimit(ScopedRateThrottle):
    """Counts the request against its view's ``throttle_scope``; over the limit DRF answers 429."""

    usage: ratelimit.Usage | None = None

    def get_rate(self) -> str:
        return ratelimit.rate_for(self.scope)

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        # Raises DependencyUnavailable (503) itself when the cache is down and the scope fails closed.
        self.usage = ratelimit.usage(self.scope, ratelimit.identity_key(request))
        if self.usage is None or not self.usage.limited:
            return True
        counters.increment("ratelimit_rejections_total", group=self.scope)
        # The exception handler builds the envelope's details (scope, limit) from this.
        request.rate_limit_refusal = self.usage.error(self.rate)
        return False

    def wait(self) -> float | None:
        return self.usage.reset_in if self.usage is not None else None


class ScopeByMethod:
    """A view mixin: reads (GET, HEAD, OPTIONS) count against ``read_scope``, writes against ``write_scope``."""

    read_scope: str
    write_scope: str

    @property
    def throttle_scope(self) -> str:
        return self.read_scope if self.request.method in ("GET", "HEAD", "OPTIONS") else self.write_scope
