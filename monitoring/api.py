"""REST endpoints: agents push operations and runs; people read summaries."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.permissions import Requires
from monitoring import serializers
from monitoring.parsing import batch_items, parse_agent_runs, parse_operations
from monitoring.selectors import operation_summary, operations_summary
from monitoring.services import IngestResult, agent_runs_ingest, operations_ingest


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
    ratelimit_group = "monitoring.write"

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
    ratelimit_group = "monitoring.write"

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


class SummaryView(APIView):
    permission_classes = [Requires("monitoring.view_metrics")]
    ratelimit_group = "monitoring.read"

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
