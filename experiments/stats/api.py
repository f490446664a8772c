"""``GET /api/v1/experiments/{key}/stats``: the analysis and decision for one experiment."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.permissions import Requires
from experiments.selectors import experiment_get

from .selectors import SOURCES, experiment_stats
from .serializers import ExperimentStatsSerializer
from .services import experiment_stats_refresh


class ExperimentStatsView(APIView):
    permission_classes = [Requires("experiments.view_experiment")]
    throttle_scope = "experiments.read"

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "source",
                str,
                enum=list(SOURCES),
                description=(
                    "rollup (default; milliseconds: the rollup plus the results after its watermark, every "
                    "result counted) or raw (recomputed from every result, slower; the same numbers)"
                ),
            )
        ],
        responses=ExperimentStatsSerializer,
    )
    def get(self, request, key: str):
        experiment = experiment_get(key=key)
        source = request.query_params.get("source", "rollup")
        if source == "rollup":
            experiment_stats_refresh(experiment=experiment)
        return Response(experiment_stats(experiment=experiment, source=source))
