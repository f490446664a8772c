"""``GET /api/v1/reports/?kind=&since=`` and ``GET /api/v1/reports/{id}`` for analysts."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.permissions import Requires
from reports import selectors
from reports.serializers import (
    ReportDetailSerializer,
    ReportListQuerySerializer,
    ReportPageSerializer,
    ReportSerializer,
)


class ReportListView(APIView):
    permission_classes = [Requires("reports.view_report")]
    throttle_scope = "reports.read"

    @extend_schema(parameters=[ReportListQuerySerializer], responses=ReportPageSerializer, operation_id="reports_list")
    def get(self, request):
        params = ReportListQuerySerializer.from_request(request).validated_data
        reports = selectors.report_list(kind=params.get("kind"), since=params.get("since"))
        limit, offset = params["limit"], params["offset"]
        page = reports[offset : offset + limit]
        return Response(
            {
                "count": reports.count(),
                "limit": limit,
                "offset": offset,
                "results": ReportSerializer(page, many=True).data,
            }
        )


class ReportDetailView(APIView):
    permission_classes = [Requires("reports.view_report")]
    throttle_scope = "reports.read"

    @extend_schema(responses=ReportDetailSerializer, operation_id="reports_retrieve")
    def get(self, request, report_id: int):
        return Response(ReportDetailSerializer(selectors.report_get(report_id=report_id)).data)
