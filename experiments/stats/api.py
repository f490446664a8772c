"""``GET /api/v1/experiments/{key}/stats``: the analysis and decision for one experiment."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.permissions import Requires

from .selectors import SOURCES, experiment_get_by_key, experiment_stats
from .serializers import ExperimentStatsSerializer


class ExperimentStatsView(APIView):
    permission_classes = [Requires("experiments.view_experiment")]
    throttle_scope = "experiments.read"

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "source",
                str,
                enum=list(SOURCES),
                description="rollup (default; milliseconds, as fresh as data_through) or raw (every result, slower)",
            )
        ],
        responses=ExperimentStatsSerializer,
    )
    def get(self, request, key: str):
        experiment = experiment_get_by_key(key=key)
        return Response(experiment_stats(experiment=experiment, source=request.query_params.get("source", "rollup")))
