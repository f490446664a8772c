"""REST endpoints of traces (reads: analysts, operators, admins, and agents for their own) and of
the model price table (admins write, analysts and operators read)."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.errors import ValidationFailed
from agentplatform.permissions import Requires
from agentplatform.query import limit_offset_page
from agentplatform.throttling import ScopeByMethod
from traces import selectors, services
from traces.models import ModelPrice
from traces.serializers import (
    TRACE_ID_RE,
    ModelPriceInSerializer,
    ModelPriceOutSerializer,
    TraceDetailQuerySerializer,
    TraceDetailSerializer,
    TracePageSerializer,
    TraceQuerySerializer,
    span_to_dict,
    trace_to_dict,
)

TRACE_ID_PATTERN = re.compile(TRACE_ID_RE)


class ReadsTraces(BasePermission):
    """Readers of every trace (``view_trace``) or of their own (``view_own_trace``: agents)."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return user.has_perm("traces.view_trace") or user.has_perm("traces.view_own_trace")


def _agent_names(traces) -> dict[int, str]:
    ids = {trace.agent_id for trace in traces}
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


class TraceListView(APIView):
    """Traces the caller may read, newest first, filtered; keyset (cursor) pages."""

    permission_classes = [ReadsTraces]
    throttle_scope = "traces.read"

    @extend_schema(
        operation_id="v1_traces_list",
        parameters=[TraceQuerySerializer],
        responses=TracePageSerializer,
        summary="List traces",
    )
    def get(self, request):
        query = TraceQuerySerializer.from_request(request)
        traces, next_cursor = selectors.trace_page(
            user=request.user,
            filters=query.filters(),
            cursor=query.validated_data.get("cursor"),
            limit=query.limit(),
        )
        names = _agent_names(traces)
        return Response(
            {"results": [trace_to_dict(trace, agent_names=names) for trace in traces], "next_cursor": next_cursor}
        )


class TraceDetailView(APIView):
    """One trace with its spans in tree order (an agent reads only its own: 404 for another's)."""

    permission_classes = [ReadsTraces]
    throttle_scope = "traces.read"

    @extend_schema(
        parameters=[TraceDetailQuerySerializer], responses=TraceDetailSerializer, summary="A trace and its spans"
    )
    def get(self, request, trace_id: str):
        query = TraceDetailQuerySerializer.from_request(request).validated_data
        if not TRACE_ID_PATTERN.match(trace_id):
            raise ValidationFailed(
                "A trace id is 32 lowercase hex digits.", details={"trace_id": ["Must match [0-9a-f]{32}."]}
            )
        trace = selectors.trace_get(user=request.user, trace_id=trace_id, agent=query.get("agent"))
        spans = selectors.trace_spans(trace)
        tree = selectors.span_tree(spans, trace_start=trace.start_time)
        body = trace_to_dict(trace, agent_names=_agent_names([trace]))
        body["spans"] = [span_to_dict(node) for node in tree]
        body["spans_truncated"] = len(spans) < trace.span_count
        return Response(body)


class _PriceScope(ScopeByMethod):
    read_scope = "traces.read"
    write_scope = "traces.write"


class ModelPricePagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class ModelPriceListView(_PriceScope, APIView):
    permission_classes = [Requires(model=ModelPrice)]  # GET view_modelprice, POST add_modelprice

    @extend_schema(
        operation_id="v1_model_prices_list",
        responses=limit_offset_page("PaginatedModelPriceList", ModelPriceOutSerializer),
        summary="List model prices",
    )
    def get(self, request):
        paginator = ModelPricePagination()
        page = paginator.paginate_queryset(selectors.model_price_list(), request, view=self)
        return paginator.get_paginated_response(ModelPriceOutSerializer(page, many=True).data)

    @extend_schema(
        request=ModelPriceInSerializer, responses={201: ModelPriceOutSerializer}, summary="Add a model price"
    )
    def post(self, request):
        serializer = ModelPriceInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        price = services.model_price_create(actor=request.user, data=serializer.validated_data, request=request)
        return Response(ModelPriceOutSerializer(price).data, status=201)


class ModelPriceDetailView(_PriceScope, APIView):
    permission_classes = [Requires(model=ModelPrice)]  # GET view, PUT change, DELETE delete
    http_method_names = ["get", "put", "delete", "head", "options"]

    @extend_schema(responses=ModelPriceOutSerializer, summary="A model price")
    def get(self, request, price_id: int):
        return Response(ModelPriceOutSerializer(selectors.model_price_get(price_id=price_id)).data)

    @extend_schema(
        request=ModelPriceInSerializer,
        responses=ModelPriceOutSerializer,
        summary="Change a model price (fields left out keep their value)",
    )
    def put(self, request, price_id: int):
        price = selectors.model_price_get(price_id=price_id)
        serializer = ModelPriceInSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        price = services.model_price_update(
            actor=request.user, price=price, data=serializer.validated_data, request=request
        )
        return Response(ModelPriceOutSerializer(price).data)

    @extend_schema(responses={204: None}, summary="Delete a model price")
    def delete(self, request, price_id: int):
        services.model_price_delete(
            actor=request.user, price=selectors.model_price_get(price_id=price_id), request=request
        )
        return Response(status=204)
