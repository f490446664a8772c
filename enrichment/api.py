"""API views of the enrichment app: outside context and collected-document search."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agentplatform.permissions import Requires
from enrichment.selectors import documents_search
from enrichment.serializers import (
    ContextRequestSerializer,
    ContextResponseSerializer,
    DocumentSearchQuerySerializer,
    DocumentSerializer,
)
from enrichment.services import context_enrich


class ContextView(APIView):
    """Fetch web pages, search results, transcripts, Supadata results and MCP tool output at once."""

    permission_classes = [Requires("enrichment.fetch_context")]
    throttle_scope = "enrichment.context"

    @extend_schema(request=ContextRequestSerializer, responses={200: ContextResponseSerializer})
    def post(self, request):
        serializer = ContextRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(context_enrich(actor=request.user, spec=serializer.validated_data, request=request))


class DocumentSearchView(APIView):
    """Full-text search over collected public documents."""

    permission_classes = [Requires("enrichment.view_collecteddocument")]
    throttle_scope = "documents.search"

    @extend_schema(
        parameters=[DocumentSearchQuerySerializer],
        responses={
            200: inline_serializer(
                "DocumentSearchResult",
                {
                    "query": serializers.CharField(),
                    "count": serializers.IntegerField(),
                    "results": DocumentSerializer(many=True),
                },
            )
        },
    )
    def get(self, request):
        data = DocumentSearchQuerySerializer.from_request(request).validated_data
        documents = list(documents_search(query=data["q"], source=data.get("source"), limit=data["limit"]))
        return Response(
            {
                "query": data["q"],
                "count": len(documents),
                "results": DocumentSerializer(documents, many=True).data,
            }
        )
