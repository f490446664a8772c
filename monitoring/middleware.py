"""Times every request by route name, method and status class."""

from __future__ import annotations

import time

from django.conf import settings

from monitoring.recorder import recorder

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A view the benchmark compares the timed no-op against (same view, not timed); see docs.
UNTIMED_PATHS = frozenset({"/api/v1/monitoring/bench/noop-untimed"})


class RequestTimingMiddleware:
    """Right after the request-id middleware, so it sees the final status of every response.

    The route label is the URL pattern's name (``namespace:name``) or its route string, never the
    raw path, so the number of label values is bounded by the URLconf; unmatched paths share one.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.MONITORING_TIMING_ENABLED or request.path_info in UNTIMED_PATHS:
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        match = request.resolver_match
        route = (match.view_name or match.route or "<unnamed>") if match else "<unmatched>"
        method = request.method if request.method in _METHODS else "OTHER"
        recorder.observe_request(method=method, route=route, status=response.status_code, duration_ms=elapsed_ms)
        recorder.ensure_started()
        return response
