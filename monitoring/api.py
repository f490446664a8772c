"""REST endpoints: agents push operations and runs; people read summaries."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from agentplatform.ingest import IngestResultSerializer, batch_items, ingest_response
from agentplatform.permissions import Requires
from monitoring import serializers
from monitoring.parsing import parse_agent_runs, parse_operations
from monitoring.selectors import operation_summary, operations_summary
from monitoring.services import agent_runs_ingest, operations_ingest


class OperationsIngestView(APIView):
    permission_classes = [Requires("monitoring.push_metrics")]
    throttle_scope = "monitoring.write"

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
    throttle_scope = "monitoring.write"

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


class SummaryView(APIView):
    permission_classes = [Requires("monitoring.view_metrics")]
    throttle_scope = "monitoring.read"

    @extend_schema(
        parameters=[serializers.MetricsSummaryQuerySerializer],
        responses={200: serializers.SUMMARY_RESPONSE},
        summary="Count, error rate and p50/p95/p99 from merged histograms",
    )
    def get(self, request):
        query = serializers.MetricsSummaryQuerySerializer.from_request(request).validated_data
        operation, since, until = query["operation"], query["since"], query["until"]
        if operation:
            return Response(serializers.summary_json(operation_summary(operation=operation, since=since, until=until)))
        return Response(serializers.summary_json(operations_summary(since=since, until=until)))
