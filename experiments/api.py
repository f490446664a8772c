"""REST endpoints of experiments: CRUD and life cycle for staff, resolve and results for agents."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.errors import ValidationFailed
from agentplatform.etags import etag_matches
from agentplatform.ingest import IngestResultSerializer, batch_items, ingest_response
from agentplatform.permissions import Requires
from agentplatform.query import limit_offset_page
from agentplatform.throttling import ScopeByMethod
from experiments import selectors
from experiments.models import Experiment
from experiments.serializers import (
    EXPERIMENT_MAX_PAGE_SIZE,
    EXPERIMENT_PAGE_SIZE,
    ExperimentCreateInputSerializer,
    ExperimentListQuerySerializer,
    ExperimentOutputSerializer,
    ExperimentUpdateInputSerializer,
    ExposuresRequestSerializer,
    PromoteInputSerializer,
    PromotionOutputSerializer,
    ResolveRequestSerializer,
    ResolveResponseSerializer,
    ResultsRequestSerializer,
)
from experiments.services import lifecycle
from experiments.services.promotion import experiment_promote
from experiments.services.reported_exposures import exposures_ingest
from experiments.services.resolve import prompt_resolve
from experiments.services.results import results_ingest
from experiments.snapshot import get_snapshot
from experiments.validation import resolve_request_errors


class _ByMethod(ScopeByMethod):
    read_scope = "experiments.read"
    write_scope = "experiments.write"


class ExperimentPagination(LimitOffsetPagination):
    default_limit = EXPERIMENT_PAGE_SIZE
    max_limit = EXPERIMENT_MAX_PAGE_SIZE


class ExperimentListView(_ByMethod, APIView):
    permission_classes = [Requires(model=Experiment)]  # GET view_experiment, POST add_experiment

    @extend_schema(
        operation_id="v1_experiments_list",
        parameters=[ExperimentListQuerySerializer],
        responses=limit_offset_page("PaginatedExperimentList", ExperimentOutputSerializer),
    )
    def get(self, request):
        query = ExperimentListQuerySerializer.from_request(request).validated_data
        queryset = selectors.experiment_list(status=query.get("status"), prompt_type=query.get("prompt_type"))
        paginator = ExperimentPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(ExperimentOutputSerializer(page, many=True).data)

    @extend_schema(request=ExperimentCreateInputSerializer, responses={201: ExperimentOutputSerializer})
    def post(self, request):
        serializer = ExperimentCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = lifecycle.experiment_create(actor=request.user, data=serializer.validated_data, request=request)
        return Response(ExperimentOutputSerializer(experiment).data, status=201)


class ExperimentDetailView(_ByMethod, APIView):
    permission_classes = [Requires(model=Experiment)]  # GET view, PUT/PATCH change, DELETE delete

    @extend_schema(responses=ExperimentOutputSerializer)
    def get(self, request, key: str):
        return Response(ExperimentOutputSerializer(selectors.experiment_get(key=key)).data)

    def _update(self, request, key: str):
        experiment = selectors.experiment_get(key=key)
        serializer = ExperimentUpdateInputSerializer(experiment, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        experiment = lifecycle.experiment_update(
            actor=request.user, experiment=experiment, data=serializer.validated_data, request=request
        )
        return Response(ExperimentOutputSerializer(experiment).data)

    @extend_schema(request=ExperimentUpdateInputSerializer, responses=ExperimentOutputSerializer)
    def patch(self, request, key: str):
        return self._update(request, key)

    @extend_schema(request=ExperimentUpdateInputSerializer, responses=ExperimentOutputSerializer)
    def put(self, request, key: str):
        return self._update(request, key)

    @extend_schema(responses={204: None})
    def delete(self, request, key: str):
        lifecycle.experiment_delete(actor=request.user, experiment=selectors.experiment_get(key=key), request=request)
        return Response(status=204)


class ExperimentTransitionView(APIView):
    """``POST experiments/{key}/start|pause|stop``."""

    permission_classes = [Requires("experiments.run_experiment")]
    throttle_scope = "experiments.write"
    transition = ""

    @extend_schema(request=None, responses=ExperimentOutputSerializer)
    def post(self, request, key: str):
        action = {
            "start": lifecycle.experiment_start,
            "pause": lifecycle.experiment_pause,
            "stop": lifecycle.experiment_stop,
        }[self.transition]
        experiment = action(actor=request.user, experiment=selectors.experiment_get(key=key), request=request)
        return Response(ExperimentOutputSerializer(experiment).data)


class PromptResolveView(APIView):
    """Which prompt this user gets now: zero database queries in steady state."""

    permission_classes = [Requires("experiments.resolve_prompt")]
    throttle_scope = "prompts.resolve"

    @extend_schema(request=ResolveRequestSerializer, responses=ResolveResponseSerializer)
    def post(self, request):
        data = request.data
        if not isinstance(data, dict):
            raise ValidationFailed("Send a JSON object.")
        errors = resolve_request_errors(data)
        if errors:
            raise ValidationFailed("The resolve request is not valid.", details=errors)
        resolution = prompt_resolve(
            user_id=data["user_id"],
            prompt_type=data["prompt_type"],
            default_prompt=data.get("default_prompt"),
            label=data.get("label"),
            variables=data.get("variables"),
        )
        return Response(resolution.as_dict())


class ExperimentPromoteView(APIView):
    """``POST experiments/{key}/promote`` {variant}: production to the variant's version, the experiment stopped."""

    permission_classes = [Requires("experiments.run_experiment")]  # moving production also needs its permission
    throttle_scope = "experiments.write"

    @extend_schema(request=PromoteInputSerializer, responses=PromotionOutputSerializer)
    def post(self, request, key: str):
        serializer = PromoteInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        promotion = experiment_promote(
            actor=request.user,
            experiment=selectors.experiment_get(key=key),
            variant_key=serializer.validated_data["variant"],
            request=request,
        )
        return Response(PromotionOutputSerializer(promotion).data)


class GrowthBookFeaturesView(APIView):
    """The running experiments as a GrowthBook SDK features payload, for local evaluation.

    Encoded once per snapshot with a strong ETag: a client revalidating with ``If-None-Match``
    gets a 304 until an experiment or a label changes.
    """

    permission_classes = [Requires("experiments.resolve_prompt")]
    throttle_scope = "experiments.read"

    @extend_schema(
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False)],
        responses={
            200: dict,
            304: OpenApiResponse(description="The ETag sent in If-None-Match is still current."),
        },
    )
    def get(self, request):
        snapshot = get_snapshot()
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and etag_matches(if_none_match, snapshot.features_etag):
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(snapshot.features_body, content_type="application/json")
        response["ETag"] = snapshot.features_etag
        response["Cache-Control"] = "private, no-cache"
        return response


class ResultsView(APIView):
    """``POST experiments/{key}/results``: 1 to 1,000 rows, each accepted, duplicate or rejected."""

    permission_classes = [Requires("experiments.add_result")]
    throttle_scope = "experiments.results"
    # Bytes: 1,000 rows with long model names and ids exceed the default 1 MiB ceiling.
    max_body_bytes = settings.MAX_BATCH_REQUEST_BYTES

    @extend_schema(
        request=ResultsRequestSerializer,
        responses={200: IngestResultSerializer},
        summary="Report 1 to 1,000 results; each row accepted, duplicate or rejected",
    )
    def post(self, request, key: str):
        rows = batch_items(request.data, key="results", maximum=settings.EXPERIMENTS_RESULTS_MAX_ROWS)
        return ingest_response(results_ingest(experiment_key=key, rows=rows))


class ExposuresView(APIView):
    """``POST experiments/exposures``: 1 to 1,000 exposures of clients that evaluate locally (the SDK).

    Permission: resolving prompts, since a client that may resolve may also report what it resolved.
    """

    permission_classes = [Requires("experiments.resolve_prompt")]
    throttle_scope = "experiments.exposures"
    max_body_bytes = settings.MAX_BATCH_REQUEST_BYTES

    @extend_schema(
        request=ExposuresRequestSerializer,
        responses={200: IngestResultSerializer},
        summary="Report 1 to 1,000 first exposures of locally evaluated users; (experiment, user) stored once",
    )
    def post(self, request):
        rows = batch_items(request.data, key="exposures", maximum=settings.EXPERIMENTS_EXPOSURES_MAX_ROWS)
        return ingest_response(exposures_ingest(rows=rows))
