"""REST endpoints: agents push operations and runs; people read summaries."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from agentplatform.errors import ValidationFailed
from agentplatform.ingest import IngestResultSerializer, batch_items, ingest_response
from agentplatform.permissions import Requires
from monitoring import serializers
from monitoring.parsing import parse_agent_runs, parse_operations
from monitoring.selectors import operation_summary, operations_summary
from monitoring.services import agent_runs_ingest, operations_ingest

# Days a summary window may span at most (the hour retention).
MAX_SUMMARY_DAYS = 90


class OperationsIngestView(APIView):
    permission_classes = [Requires("monitoring.push_metrics")]
    ratelimit_group = "monitoring.write"

    @extend_schema(
        request=serializers.MetricsOperationBatchSerializer,
        responses={200: IngestResultSerializer},
        summary="Push a batch of timed operations (1-5,000; an event_id the caller sent before counts once)",
    )
    def post(self, request):
        items = batch_items(request.data, key="operations", maximum=settings.MONITORING_MAX_OPERATIONS_PER_BATCH)
        now = timezone.now()
        oldest = (now - timedelta(days=settings.MONITORING_MINUTE_RETENTION_DAYS)).timestamp()
        rows, rejected = parse_operations(items, oldest=oldest, now=now.timestamp())
        result = operations_ingest(rows=rows, submitter=request.user)
        result.rejected = rejected
        return ingest_response(result)


class AgentRunsIngestView(APIView):
    permission_classes = [Requires("monitoring.push_metrics")]
    ratelimit_group = "monitoring.write"

    @extend_schema(
        request=serializers.MetricsAgentRunBatchSerializer,
        responses={200: IngestResultSerializer},
        summary="Push a batch of the caller's agent workflow runs (run_id idempotent per caller)",
    )
    def post(self, request):
        items = batch_items(request.data, key="runs", maximum=settings.MONITORING_MAX_RUNS_PER_BATCH)
        now = timezone.now()
        oldest = now - timedelta(days=settings.MONITORING_HOUR_RETENTION_DAYS)
        rows, rejected = parse_agent_runs(items, oldest=oldest, now=now)
        # An agent (API key) files its own runs only; a person with the permission may file any agent's.
        result = agent_runs_ingest(rows=rows, actor=request.user, own_runs_only=isinstance(request.auth, ApiKey))
        result.rejected = rejected
        return ingest_response(result)


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
    ratelimit_group = "monitoring.read"

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
