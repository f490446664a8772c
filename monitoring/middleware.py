"""Times every request by route name, method and status class."""

from __future__ import annotations

import time

from django.conf import settings

from monitoring.recorder import recorder

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _is_timed(match) -> bool:
    """False for a view that declares ``request_timing = False`` (class attribute or function attribute)."""
    func = match.func
    view = getattr(func, "view_class", None) or getattr(func, "cls", None) or func
    return getattr(view, "request_timing", True)


class RequestTimingMiddleware:
    """Right after the request-id middleware, so it sees the final status of every response.

    The route label is the URL pattern's name (``namespace:name``) or its route string, never the
    raw path, so the number of label values is bounded by the URLconf; unmatched paths share one.
    A view with ``request_timing = False`` is not recorded (the benchmark's untimed no-op).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.MONITORING_TIMING_ENABLED:
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        match = request.resolver_match
        if match and not _is_timed(match):
            return response
        route = (match.view_name or match.route or "<unnamed>") if match else "<unmatched>"
        method = request.method if request.method in _METHODS else "OTHER"
        recorder.observe_request(method=method, route=route, status=response.status_code, duration_ms=elapsed_ms)
        recorder.ensure_started()
        return response
