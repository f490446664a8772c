"""Cross-cutting request middleware."""

from __future__ import annotations

import io
import logging

from csp.middleware import CSPMiddleware
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

from agentplatform import compat, request_id
from agentplatform.client_ip import FORWARDED_FOR_META, FORWARDED_PROTO_META, is_trusted_proxy, normalise_ip

logger = logging.getLogger(__name__)


class RequestIdMiddleware:
    """Gives every request a correlation id and returns it on every response.

    Outermost in ``MIDDLEWARE`` so errors raised by any inner middleware still get the header:
    Django converts them to responses inside the chain, and this layer stamps them on the way out.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        value = request_id.accept_or_generate(request.META.get(request_id.META_KEY))
        token = request_id.set_request_id(value)
        request.request_id = value
        try:
            response = self.get_response(request)
        finally:
            request_id.reset_request_id(token)
        response[request_id.HEADER] = value
        return response


class ForwardedHeadersMiddleware:
    """Drops ``X-Forwarded-For`` and ``X-Forwarded-Proto`` unless a trusted proxy sent them.

    ``get_client_ip`` already ignores a client's own ``X-Forwarded-For``; Django's
    ``SECURE_PROXY_SSL_HEADER`` and any library reading ``request.META`` do not check who sent the
    header, so a client connecting directly could otherwise claim HTTPS. Outermost but one, before
    ``SecurityMiddleware`` decides about the HTTPS redirect.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if (FORWARDED_FOR_META in meta or FORWARDED_PROTO_META in meta) and not is_trusted_proxy(
            normalise_ip(meta.get("REMOTE_ADDR"))
        ):
            meta.pop(FORWARDED_FOR_META, None)
            meta.pop(FORWARDED_PROTO_META, None)
        return self.get_response(request)


# Answers a browser does not render as a page: they need no page policy (and the API's hot path
# does not pay for building one).
_NOT_DOCUMENTS = ("application/json", "text/plain", "application/problem+json", "application/openmetrics-text")


class DocumentSecurityHeadersMiddleware(CSPMiddleware):
    """django-csp's Content-Security-Policy plus ``Permissions-Policy``, on pages only.

    A view can still adjust its page's policy with django-csp's decorators (``csp_update``).
    """

    def process_response(self, request, response):
        # A 304 has no body (nor Content-Type): the client keeps the headers of the copy it revalidated.
        if response.status_code == 304 or response.get("Content-Type", "").startswith(_NOT_DOCUMENTS):
            return response
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return super().process_response(request, response)


class _BoundedStream:
    """A request body stream that raises ``RequestDataTooBig`` once more than ``limit`` bytes are read."""

    def __init__(self, stream, limit: int):
        self._stream = stream
        self._remaining = limit

    def _take(self, data: bytes) -> bytes:
        self._remaining -= len(data)
        if self._remaining < 0:
            raise RequestDataTooBig("Request body exceeded the size limit.")
        return data

    def read(self, size: int | None = -1, /) -> bytes:
        want = self._remaining + 1 if size is None or size < 0 else min(size, self._remaining + 1)
        return self._take(self._stream.read(want))

    def readline(self, size: int | None = -1, /) -> bytes:
        want = self._remaining + 1 if size is None or size < 0 else min(size, self._remaining + 1)
        return self._take(self._stream.readline(want))

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close:
            close()


def body_limit_for(view_func) -> int:
    """Bytes the view accepts: its ``max_body_bytes`` if it sets one, else ``MAX_REQUEST_BYTES``;
    never more than ``MAX_REQUEST_BYTES_CEILING``."""
    owner = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None) or view_func
    limit = getattr(owner, "max_body_bytes", None)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        limit = settings.MAX_REQUEST_BYTES
    return min(limit, settings.MAX_REQUEST_BYTES_CEILING)


class RequestBodyLimitMiddleware:
    """Refuses request bodies larger than the view accepts, with a 413 envelope.

    DRF's JSON parser reads the request stream itself, so Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
    (checked only by ``request.body`` and form parsing) does not protect API views. Here the limit
    is enforced twice: on the declared ``Content-Length`` before anything is read, and on the bytes
    actually read, whatever the declaration. A chunked body (no Content-Length; WSGI servers such
    as gunicorn de-chunk it) is read up to the limit here and handed on with its real length, so
    DRF parses it instead of seeing an empty body.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        limit = body_limit_for(view_func)
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                length = int(declared)
            except ValueError:
                return _too_large(request, "The Content-Length header is not a number.", status=400)
            if length > limit:
                return _too_large(request, _limit_message(limit))
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            raw = request.environ.get("wsgi.input") if hasattr(request, "environ") else None
            source = raw if raw is not None else compat.request_body_stream(request)
            body = source.read(limit + 1)
            if len(body) > limit:
                return _too_large(request, _limit_message(limit))
            compat.replace_request_body_stream(request, io.BytesIO(body))
            request.META["CONTENT_LENGTH"] = str(len(body))
            return None
        compat.replace_request_body_stream(request, _BoundedStream(compat.request_body_stream(request), limit))
        return None


def _limit_message(limit: int) -> str:
    return f"The request body is larger than this endpoint accepts ({limit} bytes)."


def _too_large(request, message: str, *, status: int = 413) -> JsonResponse:
    from agentplatform.errors import MalformedRequest, PayloadTooLarge, error_json_response

    error = PayloadTooLarge(message) if status == 413 else MalformedRequest(message)
    return error_json_response(error)
