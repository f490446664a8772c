"""REST endpoints: agents push operations and runs; people read summaries."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.errors import ValidationFailed
from agentplatform.permissions import Requires
from monitoring import serializers
from monitoring.parsing import batch_items, parse_agent_runs, parse_operations
from monitoring.selectors import operation_summary, operations_summary
from monitoring.services import IngestResult, agent_runs_ingest, operations_ingest

# Days a summary window may span at most (the hour retention).
MAX_SUMMARY_DAYS = 90


def _ingest_response(result: IngestResult) -> Response:
    body = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "errors": [error.as_dict() for error in result.errors],
    }
    # 207: the batch was processed but some rows were refused; each is named in "errors".
    return Response(body, status=207 if result.errors else 200)


class OperationsIngestView(APIView):
    permission_classes = [Requires("monitoring.push_metrics")]
    throttle_scope = "monitoring.write"

    @extend_schema(
        request=serializers.MetricsOperationBatchSerializer,
        responses={200: serializers.MetricsIngestResultSerializer, 207: serializers.MetricsIngestResultSerializer},
        summary="Push a batch of timed operations (1-5,000; a repeated event_id counts once)",
    )
    def post(self, request):
        items = batch_items(request.data, key="operations", maximum=settings.MONITORING_MAX_OPERATIONS_PER_BATCH)
        now = timezone.now()
        oldest = (now - timedelta(days=settings.MONITORING_MINUTE_RETENTION_DAYS)).timestamp()
        rows, errors = parse_operations(items, oldest=oldest, now=now.timestamp())
        return _ingest_response(operations_ingest(rows=rows, errors=errors))


class AgentRunsIngestView(APIView):
    permission_classes = [Requires("monitoring.push_metrics")]
    throttle_scope = "monitoring.write"

    @extend_schema(
        request=serializers.MetricsAgentRunBatchSerializer,
        responses={200: serializers.MetricsIngestResultSerializer, 207: serializers.MetricsIngestResultSerializer},
        summary="Push a batch of agent workflow runs (run_id idempotent)",
    )
    def post(self, request):
        items = batch_items(request.data, key="runs", maximum=settings.MONITORING_MAX_RUNS_PER_BATCH)
        now = timezone.now()
        oldest = now - timedelta(days=settings.MONITORING_HOUR_RETENTION_DAYS)
        rows, errors = parse_agent_runs(items, oldest=oldest, now=now)
        return _ingest_response(agent_runs_ingest(rows=rows, errors=errors, actor=request.user))


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"'{name}' must be an ISO 8601 date-time.", details={"field": name}) from None
    if parsed.tzinfo is None:
        raise ValidationFailed(f"'{name}' must include a time zone.", details={"field": name})
    return parsed


class SummaryView(APIView):
    permission_classes = [Requires("monitoring.view_metrics")]
    throttle_scope = "monitoring.read"

    @extend_schema(
        parameters=[
            OpenApiParameter("operation", OpenApiTypes.STR, description="One operation; omit for all of them."),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Window start (default: an hour ago)."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Window end, exclusive (default: now)."),
        ],
        responses={200: serializers.SUMMARY_RESPONSE},
        summary="Count, error rate and p50/p95/p99 from merged histograms",
    )
    def get(self, request):
        now = timezone.now()
        until = _parse_time(request.query_params.get("until"), "until") or now
        since = _parse_time(request.query_params.get("since"), "since") or until - timedelta(hours=1)
        if since >= until:
            raise ValidationFailed("'since' must be before 'until'.", details={"field": "since"})
        if until - since > timedelta(days=MAX_SUMMARY_DAYS):
            raise ValidationFailed(f"The window may span at most {MAX_SUMMARY_DAYS} days.", details={"field": "since"})
        operation = request.query_params.get("operation")
        if operation:
            if len(operation) > 200:
                raise ValidationFailed("'operation' is at most 200 characters.", details={"field": "operation"})
            return Response(serializers.summary_json(operation_summary(operation=operation, since=since, until=until)))
        return Response(serializers.summary_json(operations_summary(since=since, until=until)))
