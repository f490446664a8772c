"""REST endpoints of the prompt registry."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.errors import NotFound
from agentplatform.etags import etag_matches
from agentplatform.permissions import Requires
from agentplatform.throttling import ScopeByMethod
from experiments.snapshot import get_snapshot
from prompts import selectors, services
from prompts.models import LABEL_PATTERN, LATEST, Prompt, PromptLabel, PromptVersion
from prompts.serializers import (
    LabelHistoryOutputSerializer,
    LabelHistoryPageSerializer,
    LabelHistoryQuerySerializer,
    LabelMoveInputSerializer,
    LabelMoveOutputSerializer,
    PromptCreateInputSerializer,
    PromptListQuerySerializer,
    PromptOutputSerializer,
    PromptPageSerializer,
    PromptUpdateInputSerializer,
    PromptVersionCreateInputSerializer,
    PromptVersionListQuerySerializer,
    PromptVersionOutputSerializer,
    PromptVersionPageSerializer,
)

# --- registry CRUD, versions, label moves and history (staff) ---

KEY_PARAMETER = OpenApiParameter("key", str, OpenApiParameter.PATH, description="The prompt's key (prompt type).")
LABEL_PARAMETER = OpenApiParameter("label", str, OpenApiParameter.PATH, description="A label name, e.g. production.")
VERSION_PARAMETER = OpenApiParameter("version", int, OpenApiParameter.PATH, description="The version number.")


class _ByMethod(ScopeByMethod):
    read_scope = "prompts.read"
    write_scope = "prompts.write"


def _pagination(default: int, maximum: int) -> LimitOffsetPagination:
    paginator = LimitOffsetPagination()
    paginator.default_limit = default
    paginator.max_limit = maximum
    return paginator


def _page(request, view, queryset, serializer_class, *, default: int, maximum: int) -> Response:
    paginator = _pagination(default, maximum)
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class PromptListView(_ByMethod, APIView):
    """``GET prompts/`` (paginated, ``?search=``) and ``POST prompts/``."""

    permission_classes = [Requires(model=Prompt)]  # GET view_prompt, POST add_prompt

    @extend_schema(
        operation_id="v1_prompts_list", parameters=[PromptListQuerySerializer], responses=PromptPageSerializer
    )
    def get(self, request):
        query = PromptListQuerySerializer.from_request(request).validated_data
        prompts = selectors.prompt_list(search=query.get("search"))
        return _page(request, self, prompts, PromptOutputSerializer, default=100, maximum=500)

    @extend_schema(
        operation_id="v1_prompts_create", request=PromptCreateInputSerializer, responses={201: PromptOutputSerializer}
    )
    def post(self, request):
        serializer = PromptCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        prompt = services.prompt_create(actor=request.user, **serializer.validated_data, request=request)
        return Response(PromptOutputSerializer(selectors.prompt_detail(key=prompt.key)).data, status=201)


class PromptDetailView(_ByMethod, APIView):
    """``GET prompts/{key}`` and ``PATCH prompts/{key}`` (description, protected labels)."""

    permission_classes = [Requires(model=Prompt)]  # GET view_prompt, PATCH change_prompt

    @extend_schema(operation_id="v1_prompts_retrieve", parameters=[KEY_PARAMETER], responses=PromptOutputSerializer)
    def get(self, request, key: str):
        return Response(PromptOutputSerializer(selectors.prompt_detail(key=key)).data)

    @extend_schema(
        operation_id="v1_prompts_update",
        parameters=[KEY_PARAMETER],
        request=PromptUpdateInputSerializer,
        responses=PromptOutputSerializer,
    )
    def patch(self, request, key: str):
        prompt = selectors.prompt_get(key=key)
        serializer = PromptUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.prompt_update(actor=request.user, prompt=prompt, **serializer.validated_data, request=request)
        return Response(PromptOutputSerializer(selectors.prompt_detail(key=key)).data)


class PromptVersionListView(_ByMethod, APIView):
    """``GET prompts/{key}/versions`` (newest first) and ``POST prompts/{key}/versions``."""

    permission_classes = [Requires(model=PromptVersion)]  # GET view_promptversion, POST add_promptversion

    @extend_schema(
        operation_id="v1_prompts_versions_list",
        parameters=[KEY_PARAMETER, PromptVersionListQuerySerializer],
        responses=PromptVersionPageSerializer,
    )
    def get(self, request, key: str):
        PromptVersionListQuerySerializer.from_request(request)  # limit and offset: the paginator reads them
        versions = selectors.prompt_versions(prompt=selectors.prompt_get(key=key))
        return _page(request, self, versions, PromptVersionOutputSerializer, default=20, maximum=100)

    @extend_schema(
        operation_id="v1_prompts_versions_create",
        parameters=[KEY_PARAMETER],
        request=PromptVersionCreateInputSerializer,
        responses={201: PromptVersionOutputSerializer},
    )
    def post(self, request, key: str):
        prompt = selectors.prompt_get(key=key)
        serializer = PromptVersionCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.prompt_version_create(
            actor=request.user, prompt=prompt, **serializer.validated_data, request=request
        )
        return Response(
            PromptVersionOutputSerializer(selectors.prompt_version_get(prompt=prompt, version=version.version)).data,
            status=201,
        )


class PromptVersionDetailView(_ByMethod, APIView):
    """``GET prompts/{key}/versions/{version}``; versions are immutable, so every other method is a 405."""

    permission_classes = [Requires("prompts.view_promptversion")]

    @extend_schema(
        operation_id="v1_prompts_versions_retrieve",
        parameters=[KEY_PARAMETER, VERSION_PARAMETER],
        responses=PromptVersionOutputSerializer,
    )
    def get(self, request, key: str, version: int):
        found = selectors.prompt_version_get(prompt=selectors.prompt_get(key=key), version=version)
        return Response(PromptVersionOutputSerializer(found).data)

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise MethodNotAllowed(
            request.method,
            detail="Prompt versions are immutable: create a new version (POST prompts/{key}/versions) instead.",
        )


class PromptLabelMoveView(APIView):
    """``PUT prompts/{key}/labels/{label}``: point a label at a version (rollback: an earlier one).

    Served together with the label read agents call on the same URL: ``PromptLabelView`` below.
    """

    permission_classes = [Requires("prompts.change_promptlabel")]
    throttle_scope = "prompts.write"

    @extend_schema(
        operation_id="v1_prompts_labels_move",
        parameters=[KEY_PARAMETER, LABEL_PARAMETER],
        request=LabelMoveInputSerializer,
        responses=LabelMoveOutputSerializer,
    )
    def put(self, request, key: str, label: str):
        prompt = selectors.prompt_get(key=key)
        serializer = LabelMoveInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = serializer.validated_data["version"]
        move = services.prompt_label_move(
            actor=request.user,
            prompt=prompt,
            label=label,
            version=version,
            reason=serializer.validated_data.get("reason", ""),
            request=request,
        )
        body = {
            "key": prompt.key,
            "label": label,
            "version": version,
            "from_version": move.from_version if move is not None else version,
            "moved": move is not None,
        }
        return Response(LabelMoveOutputSerializer(body).data)


class PromptLabelHistoryView(APIView):
    """``GET prompts/{key}/labels/{label}/history``: the label's moves, newest first."""

    permission_classes = [Requires("prompts.view_promptlabelmove")]
    throttle_scope = "prompts.read"

    @extend_schema(
        operation_id="v1_prompts_labels_history",
        parameters=[KEY_PARAMETER, LABEL_PARAMETER, LabelHistoryQuerySerializer],
        responses=LabelHistoryPageSerializer,
    )
    def get(self, request, key: str, label: str):
        LabelHistoryQuerySerializer.from_request(request)  # limit and offset: the paginator reads them
        prompt = selectors.prompt_get(key=key)
        if label == LATEST or not LABEL_PATTERN.fullmatch(label):
            raise NotFound(f"'{label[:60]}' is not a label that moves: it has no history.")
        history = selectors.prompt_label_history(prompt=prompt, label=label)
        return _page(request, self, history, LabelHistoryOutputSerializer, default=100, maximum=500)


# --- the label read agents call (hot path, served from the per-process registry) ---
# Hand-written like ``experiments.api.PromptResolveView``: the body and the ETag come compiled from
# the process's snapshot, so a read is a dictionary lookup, no query, no serializer.


class PromptLabelReadOutputSerializer(serializers.Serializer):
    """For the schema: the body is encoded once per registry version (``prompts.snapshot``)."""

    key = serializers.CharField()
    label = serializers.CharField()
    version = serializers.IntegerField()
    content = serializers.CharField()
    config = serializers.DictField()
    variables = serializers.ListField(child=serializers.CharField(), help_text="The placeholder names, in order.")


class PromptLabelView(PromptLabelMoveView):
    """``GET prompts/{key}/labels/{label}``: the version under the label, with a strong ETag (304 on a
    match); ``PUT`` on the same URL moves the label (``PromptLabelMoveView``)."""

    permission_classes = [Requires(model=PromptLabel)]  # GET/HEAD view_promptlabel, PUT change_promptlabel

    @property
    def throttle_scope(self) -> str:
        return "prompts.label" if self.request.method in ("GET", "HEAD") else "prompts.write"

    @extend_schema(
        operation_id="v1_prompts_label_read",
        parameters=[
            KEY_PARAMETER,
            LABEL_PARAMETER,
            OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            200: PromptLabelReadOutputSerializer,
            304: OpenApiResponse(description="The ETag sent in If-None-Match is still current."),
        },
    )
    def get(self, request, key: str, label: str):
        labels = get_snapshot().prompts.get(key)
        served = labels.get(label) if labels is not None else None
        if served is None:
            if labels is None:
                raise NotFound(f"No prompt '{key}' with a version (the registry serves prompts that have one).")
            raise NotFound(f"Prompt '{key}' has no version under the label '{label}'.")
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and etag_matches(if_none_match, served.etag):
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(served.body, content_type="application/json")
        response["ETag"] = served.etag
        # Agents may keep the body and revalidate: a 304 costs as little as the read.
        response["Cache-Control"] = "private, no-cache"
        return response
