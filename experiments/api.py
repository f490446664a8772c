"""REST endpoints of experiments: CRUD and life cycle for staff, resolve and results for agents."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers as drf_serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.errors import ValidationFailed
from agentplatform.permissions import Requires
from experiments import selectors, services
from experiments.results import results_ingest
from experiments.serializers import (
    ExperimentSerializer,
    ResolveRequestSerializer,
    ResolveResponseSerializer,
    ResultsRequestSerializer,
    ResultsResponseSerializer,
    experiment_representation,
)
from experiments.snapshot import get_snapshot

VIEW = Requires("experiments.view_experiment")


class _ByMethod:
    """Views whose permission and rate-limit group depend on the HTTP method (read vs write)."""

    permissions_by_method: dict[str, Requires] = {}
    read_group = "experiments.read"
    write_group = "experiments.write"

    def get_permissions(self):
        return [self.permissions_by_method.get(self.request.method, self.permission_classes[0])]

    @property
    def throttle_scope(self) -> str:
        return self.read_group if self.request.method in ("GET", "HEAD", "OPTIONS") else self.write_group


class ExperimentPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 500


class ExperimentListView(_ByMethod, APIView):
    permission_classes = [VIEW]
    permissions_by_method = {"POST": Requires("experiments.add_experiment")}

    @extend_schema(
        operation_id="v1_experiments_list",
        parameters=[
            OpenApiParameter("status", str, description="draft, running, paused or completed"),
            OpenApiParameter("prompt_type", str),
            OpenApiParameter(
                "limit", int, description=f"Page size (default 100, at most {ExperimentPagination.max_limit})."
            ),
            OpenApiParameter("offset", int),
        ],
        responses=inline_serializer(
            "PaginatedExperimentList",
            {
                "count": drf_serializers.IntegerField(),
                "next": drf_serializers.URLField(allow_null=True),
                "previous": drf_serializers.URLField(allow_null=True),
                "results": ExperimentSerializer(many=True),
            },
        ),
    )
    def get(self, request):
        queryset = selectors.experiment_list(
            status=request.query_params.get("status"), prompt_type=request.query_params.get("prompt_type")
        )
        paginator = ExperimentPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([experiment_representation(e) for e in page])

    @extend_schema(request=ExperimentSerializer, responses={201: ExperimentSerializer})
    def post(self, request):
        serializer = ExperimentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = services.experiment_create(actor=request.user, data=serializer.validated_data, request=request)
        return Response(experiment_representation(experiment), status=201)


class ExperimentDetailView(_ByMethod, APIView):
    permission_classes = [VIEW]
    permissions_by_method = {
        "PATCH": Requires("experiments.change_experiment"),
        "PUT": Requires("experiments.change_experiment"),
        "DELETE": Requires("experiments.delete_experiment"),
    }

    @extend_schema(responses=ExperimentSerializer)
    def get(self, request, key: str):
        return Response(experiment_representation(services.experiment_get(key=key)))

    def _update(self, request, key: str):
        experiment = services.experiment_get(key=key)
        serializer = ExperimentSerializer(experiment, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        experiment = services.experiment_update(
            actor=request.user, experiment=experiment, data=serializer.validated_data, request=request
        )
        return Response(experiment_representation(experiment))

    @extend_schema(request=ExperimentSerializer, responses=ExperimentSerializer)
    def patch(self, request, key: str):
        return self._update(request, key)

    @extend_schema(request=ExperimentSerializer, responses=ExperimentSerializer)
    def put(self, request, key: str):
        return self._update(request, key)

    @extend_schema(responses={204: None})
    def delete(self, request, key: str):
        services.experiment_delete(actor=request.user, experiment=services.experiment_get(key=key), request=request)
        return Response(status=204)


class ExperimentTransitionView(APIView):
    """``POST experiments/{key}/start|pause|stop``."""

    permission_classes = [Requires("experiments.run_experiment")]
    throttle_scope = "experiments.write"
    transition = ""

    @extend_schema(request=None, responses=ExperimentSerializer)
    def post(self, request, key: str):
        action = {
            "start": services.experiment_start,
            "pause": services.experiment_pause,
            "stop": services.experiment_stop,
        }[self.transition]
        experiment = action(actor=request.user, experiment=services.experiment_get(key=key), request=request)
        return Response(experiment_representation(experiment))


class PromptResolveView(APIView):
    """Which prompt this user gets now: zero database queries in steady state."""

    permission_classes = [Requires("experiments.resolve_prompt")]
    throttle_scope = "prompts.resolve"

    @extend_schema(request=ResolveRequestSerializer, responses=ResolveResponseSerializer)
    def post(self, request):
        data = request.data
        if not isinstance(data, dict):
            raise ValidationFailed("Send a JSON object.")
        user_id, prompt_type, default_prompt = data.get("user_id"), data.get("prompt_type"), data.get("default_prompt")
        errors = {}
        if not isinstance(user_id, str) or not user_id or len(user_id) > 255:
            errors["user_id"] = ["A non-empty string of at most 255 characters."]
        if not isinstance(prompt_type, str) or not prompt_type or len(prompt_type) > 100:
            errors["prompt_type"] = ["A non-empty string of at most 100 characters."]
        if default_prompt is not None and not isinstance(default_prompt, str):
            errors["default_prompt"] = ["A string or null."]
        if errors:
            raise ValidationFailed("The resolve request is not valid.", details=errors)
        resolution = services.prompt_resolve(user_id=user_id, prompt_type=prompt_type, default_prompt=default_prompt)
        return Response(resolution.as_dict())


class GrowthBookFeaturesView(APIView):
    """The running experiments as a GrowthBook SDK features payload, for local evaluation."""

    permission_classes = [Requires("experiments.resolve_prompt")]
    throttle_scope = "experiments.read"

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response(get_snapshot().features_payload)


class ResultsView(APIView):
    """``POST experiments/{key}/results``: 1 to 1,000 rows, each accepted, duplicate or rejected."""

    permission_classes = [Requires("experiments.add_result")]
    throttle_scope = "experiments.results"
    # Bytes: 1,000 rows with long model names and ids exceed the default 1 MiB ceiling.
    max_body_bytes = settings.MAX_BATCH_REQUEST_BYTES

    @extend_schema(request=ResultsRequestSerializer, responses=ResultsResponseSerializer)
    def post(self, request, key: str):
        data = request.data
        if not isinstance(data, dict) or "results" not in data:
            raise ValidationFailed('Send {"results": [...]}.', details={"results": ["This field is required."]})
        outcome = results_ingest(experiment_key=key, rows=data["results"])
        return Response(outcome.as_dict())
