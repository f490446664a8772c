"""Benchmark-only view (mounted when ``BENCH_ENDPOINTS=1``): the no-op plus one ``audit_log`` call."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_log


class NoopWithAuditView(APIView):
    """``agentplatform.bench_views.NoopView`` with one buffered audit event: the cost of auditing."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request):
        audit_log(actor="system:bench", action="bench.called", request=request, details={"path": request.path})
        return Response({"ok": True})
