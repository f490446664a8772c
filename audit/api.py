"""The audit API: agents write their events in batches; readers page through and count them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.ingest import IngestResultSerializer, ingest_response
from agentplatform.permissions import Requires
from audit.selectors import audit_event_page, audit_stats
from audit.serializers import (
    AuditEventBatchInSerializer,
    AuditEventPageSerializer,
    AuditEventQuerySerializer,
    AuditStatsQuerySerializer,
    AuditStatsSerializer,
    event_to_dict,
    parse_event_rows,
)
from audit.services import audit_events_ingest


class AuditEventsView(APIView):
    """``POST``: store 1 to 1,000 events of the caller. ``GET``: a filtered page, newest first."""

    def get_permissions(self):
        # One path, two permissions: writing and reading are declared separately.
        if self.request.method == "POST":
            return [Requires("audit.add_auditevent")]
        return [Requires("audit.view_own_auditevent")]

    @property
    def throttle_scope(self) -> str:
        return "audit.write" if self.request.method == "POST" else "audit.read"

    @extend_schema(
        request=AuditEventBatchInSerializer,
        responses={200: IngestResultSerializer},
        summary="Write 1 to 1,000 audit events (the actor is the caller); each row accepted, duplicate or rejected",
    )
    def post(self, request):
        valid, rejected = parse_event_rows(request.data)
        result = audit_events_ingest(actor=request.user, rows=valid, request=request)
        result.rejected = rejected
        return ingest_response(result)

    @extend_schema(
        parameters=[AuditEventQuerySerializer],
        responses=AuditEventPageSerializer,
        summary="List audit events, newest first",
    )
    def get(self, request):
        query = AuditEventQuerySerializer.from_request(request)
        events, next_cursor = audit_event_page(
            user=request.user,
            filters=query.filters(),
            cursor=query.validated_data.get("cursor"),
            limit=query.limit(),
        )
        return Response({"results": [event_to_dict(event) for event in events], "next_cursor": next_cursor})


class AuditStatsView(APIView):
    """Counts of the events the caller may read in a period, computed in SQL."""

    permission_classes = [Requires("audit.view_own_auditevent")]
    throttle_scope = "audit.read"

    @extend_schema(parameters=[AuditStatsQuerySerializer], responses=AuditStatsSerializer, summary="Audit statistics")
    def get(self, request):
        query = AuditStatsQuerySerializer.from_request(request)
        return Response(audit_stats(user=request.user, **query.validated_data))
