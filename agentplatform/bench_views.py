"""Benchmark baseline views, mounted only when ``BENCH_ENDPOINTS=1``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView


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
