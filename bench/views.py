"""Baseline views of the benchmark harness (``bench/urls.py``), served only when ``BENCH_ENDPOINTS=1``.

Each figure in ``bench/README.md`` divides an endpoint's throughput by one of these, measured in the
same run, so the ratio says what the endpoint's own work costs.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_log


class NoopView(APIView):
    """Does nothing behind the full middleware and DRF stack: the baseline every figure divides by."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request):
        return Response({"ok": True})

    @extend_schema(exclude=True)
    def post(self, request):
        return Response({"ok": True})


class AuthenticatedNoopView(NoopView):
    """The same no-op behind authentication: the baseline for endpoints agents call with a key."""

    permission_classes = [IsAuthenticated]


class RateLimitedNoopView(NoopView):
    """The no-op counted against a rate-limit group (by client IP): the throttle's cost."""

    throttle_scope = "bench.noop"


class UntimedNoopView(NoopView):
    """The no-op that the request timing middleware does not record: the middleware's cost."""

    request_timing = False


class NoopWithAuditView(NoopView):
    """The no-op with one buffered audit event: the cost of auditing."""

    @extend_schema(exclude=True)
    def get(self, request):
        audit_log(actor="system:bench", action="bench.called", request=request, details={"path": request.path})
        return Response({"ok": True})
