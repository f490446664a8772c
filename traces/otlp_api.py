"""``POST /api/v1/otel/v1/traces``: the OTLP/HTTP traces endpoint (docs/traces.md, "Endpoint").

An exporter configured with ``OTEL_EXPORTER_OTLP_ENDPOINT=<base>/api/v1/otel`` posts here. The
answers follow the OTLP/HTTP specification:

- 200 with an ``ExportTraceServiceResponse`` in the request's encoding, holding ``partial_success``
  (``rejected_spans``, ``error_message``) when some spans were refused; duplicates of spans already
  stored are a success, not a refusal (the exporter must not retry them);
- 400 for a body that does not decode (protobuf, JSON or gzip), 413 when it is too large (after
  gzip is undone, too), 415 for another content type or content encoding;
- 401/403 without valid credentials holding ``traces.push_traces`` (agents: their API key; an
  admin's JWT is accepted too, like on every endpoint, and files the spans under that admin);
- 429 (rate limit ``traces.ingest``) and 503 (database unavailable) with ``Retry-After``: the
  statuses exporters retry.

Error bodies: a protobuf request gets a ``google.rpc.Status`` in protobuf, as OTLP says; every other
request gets the platform's JSON error envelope (the one all of ``/api/v1/`` answers with), which
an OTLP/JSON exporter reads as an unparsable status and logs as it stands. The request-size 413
of ``RequestBodyLimitMiddleware`` is answered before this view runs: always the envelope.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.views import APIView

from agentplatform.errors import PayloadTooLarge, UnsupportedMediaType
from agentplatform.permissions import Requires
from traces import otlp
from traces.ingest import spans_ingest


class OtlpTracesView(APIView):
    permission_classes = [Requires("traces.push_traces")]
    throttle_scope = "traces.ingest"
    parser_classes: list = []  # the body is decoded here: protobuf or OTLP/JSON, maybe gzipped
    # Bytes on the wire (the middleware's limit); the decompressed size is checked in ``post``.
    max_body_bytes = settings.TRACE_MAX_REQUEST_BYTES

    @extend_schema(
        request={otlp.PROTOBUF: OpenApiTypes.BINARY, otlp.JSON: OpenApiTypes.OBJECT},
        responses={
            (200, otlp.PROTOBUF): OpenApiResponse(OpenApiTypes.BINARY, description="ExportTraceServiceResponse"),
            (200, otlp.JSON): OpenApiResponse(
                OpenApiTypes.OBJECT, description="ExportTraceServiceResponse (OTLP/JSON); {} when all were accepted"
            ),
        },
        summary="Export spans over OTLP/HTTP (protobuf or JSON, optionally gzip)",
    )
    def post(self, request):
        encoding = otlp.media_type(request.content_type or "")
        if encoding not in otlp.ENCODINGS:
            raise UnsupportedMediaType(f"Send {otlp.PROTOBUF} or {otlp.JSON} (OTLP/HTTP).")
        content_encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if content_encoding not in ("", "identity", "gzip"):
            raise UnsupportedMediaType("The only content encoding accepted is gzip.")
        body = request.stream.read() if request.stream is not None else b""
        if content_encoding == "gzip":
            body = otlp.gunzip(body, limit=settings.TRACE_MAX_REQUEST_BYTES)
        elif len(body) > settings.TRACE_MAX_REQUEST_BYTES:
            raise PayloadTooLarge(
                f"The body is larger than this endpoint accepts ({settings.TRACE_MAX_REQUEST_BYTES} bytes)."
            )
        message = otlp.decode_body(body, encoding=encoding)
        result = spans_ingest(export=message, agent=request.user)
        content = otlp.response_body(rejected=len(result.rejected), message=result.message(), encoding=encoding)
        return HttpResponse(content, status=200, content_type=encoding)

    def handle_exception(self, exc):
        """The platform's envelope, or OTLP's ``google.rpc.Status`` for a protobuf request."""
        response = super().handle_exception(exc)
        if otlp.media_type(self.request.content_type or "") != otlp.PROTOBUF:
            return response
        error = (getattr(response, "data", None) or {}).get("error") or {}
        status = otlp.status_body(http_status=response.status_code, message=str(error.get("message", "")))
        converted = HttpResponse(status, status=response.status_code, content_type=otlp.PROTOBUF)
        for name in ("Retry-After", "WWW-Authenticate"):
            if name in response:
                converted[name] = response[name]
        return converted
