"""REST endpoints of the prompt registry."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseNotModified
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from agentplatform.errors import NotFound
from agentplatform.permissions import Requires
from experiments.snapshot import get_snapshot

# --- registry CRUD, versions, label moves and history (staff) ---

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


def _etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison (RFC 9110 13.1.2): ``W/"x"`` matches ``"x"``."""
    tags = parse_etags(header)
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


class PromptLabelReadView(APIView):
    """``GET prompts/{key}/labels/{label}``: the version under the label, with a strong ETag (304 on a match)."""

    permission_classes = [Requires("prompts.view_promptversion")]
    throttle_scope = "prompts.label"

    @extend_schema(
        operation_id="v1_prompts_label_read",
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False)],
        responses={
            200: PromptLabelReadOutputSerializer,
            304: OpenApiResponse(description="The ETag sent in If-None-Match is still current."),
        },
    )
    def get(self, request, key: str, label: str):
        served = get_snapshot().prompts.get(key, {}).get(label)
        if served is None:
            raise NotFound(f"Prompt '{key}' has no version under the label '{label}'.")
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and _etag_matches(if_none_match, served.etag):
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(served.body, content_type="application/json")
        response["ETag"] = served.etag
        # Agents may keep the body and revalidate: a 304 costs as little as the read.
        response["Cache-Control"] = "private, no-cache"
        return response
