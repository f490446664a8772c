"""One error vocabulary for the whole platform and the one envelope every API error uses.

Services raise ``PlatformError`` subclasses; only the API layer (``api_exception_handler`` and the
Django handlers below) and the admin turn them into responses:

    {"error": {"code": "...", "message": "...", "details": ..., "request_id": "..."}}
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from agentplatform.request_id import get_request_id

logger = logging.getLogger(__name__)


class PlatformError(Exception):
    """Base of every error the platform reports to a caller."""

    status_code = 500
    code = "internal_error"
    default_message = "Internal server error."

    def __init__(self, message: str | None = None, *, details: Any = None, code: str | None = None):
        self.message = message or self.default_message
        self.details = details
        if code:
            self.code = code
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        return {}


class ValidationFailed(PlatformError):
    status_code = 400
    code = "validation_error"
    default_message = "The request is not valid."


class MalformedRequest(PlatformError):
    status_code = 400
    code = "malformed_request"
    default_message = "The request body could not be parsed."


class AuthenticationRequired(PlatformError):
    status_code = 401
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided or are not valid."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="api"'}


class PermissionDenied(PlatformError):
    status_code = 403
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class NotFound(PlatformError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class MethodNotAllowed(PlatformError):
    status_code = 405
    code = "method_not_allowed"
    default_message = "Method not allowed."


class Conflict(PlatformError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state of the resource."


class PayloadTooLarge(PlatformError):
    status_code = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(PlatformError):
    status_code = 415
    code = "unsupported_media_type"
    default_message = "Unsupported content type; send application/json."


class RateLimited(PlatformError):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int = 60, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UpstreamError(PlatformError):
    status_code = 502
    code = "upstream_error"
    default_message = "An upstream service answered with an error."


class DependencyUnavailable(PlatformError):
    status_code = 503
    code = "dependency_unavailable"
    default_message = "A service this request depends on is unavailable; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}


def envelope(code: str, message: str, details: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details, "request_id": get_request_id()}}


def _message(detail: Any) -> str:
    """One sentence from a DRF detail; simplejwt sends ``{"detail": …, "code": …}`` as a dict."""
    if isinstance(detail, dict) and "detail" in detail:
        return str(detail["detail"])
    return str(detail)


def _from_drf(exc: drf_exceptions.APIException) -> PlatformError:
    """Translate DRF's exceptions into the platform's vocabulary."""
    if isinstance(exc, drf_exceptions.ValidationError):
        return ValidationFailed(details=exc.detail)
    if isinstance(exc, drf_exceptions.ParseError):
        return MalformedRequest(str(exc.detail))
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        error = AuthenticationRequired(_message(exc.detail))
        error.code = (
            "not_authenticated" if isinstance(exc, drf_exceptions.NotAuthenticated) else "authentication_failed"
        )
        return error
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return PermissionDenied(str(exc.detail))
    if isinstance(exc, drf_exceptions.NotFound):
        return NotFound(str(exc.detail))
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return UnsupportedMediaType(str(exc.detail))
    if isinstance(exc, drf_exceptions.NotAcceptable):
        error = PlatformError(str(exc.detail), code="not_acceptable")
        error.status_code = 406
        return error
    if isinstance(exc, drf_exceptions.Throttled):
        return RateLimited(str(exc.detail), retry_after=int(exc.wait or 60))
    error = PlatformError(str(exc.detail), code=str(exc.default_code))
    error.status_code = exc.status_code
    return error


def to_platform_error(exc: BaseException) -> PlatformError | None:
    """The platform error for a known exception, or None for an unexpected one."""
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, drf_exceptions.APIException):
        return _from_drf(exc)
    if isinstance(exc, Http404):
        return NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
        return DependencyUnavailable("The database is unavailable; retry later.", retry_after=5)
    if isinstance(exc, DatabaseError) and "connection" in str(exc).lower():
        logger.error("database connection error", exc_info=exc)
        return DependencyUnavailable("The database is unavailable; retry later.", retry_after=5)
    return None


def error_response(error: PlatformError) -> Response:
    response = Response(envelope(error.code, error.message, error.details), status=error.status_code)
    for name, value in error.headers().items():
        response[name] = value
    return response


def api_exception_handler(exc: BaseException, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception raised in an API view becomes an envelope."""
    error = None
    if isinstance(exc, drf_exceptions.Throttled):
        # The platform's throttle left its answer (scope, limit, wait) on the request it refused.
        error = getattr(context.get("request"), "rate_limit_refusal", None)
    error = error or to_platform_error(exc)
    if error is None:
        # The traceback goes to the log (with the request id on the record); the caller gets
        # the request id to quote, and nothing about the internals.
        logger.error("unhandled exception in %s", context.get("view").__class__.__name__, exc_info=exc)
        error = PlatformError()
    # Under ATOMIC_REQUESTS, don't commit a half-done change. (Imported here: rest_framework.views
    # imports the authentication classes, which import this module.)
    from rest_framework.views import set_rollback

    set_rollback()
    return error_response(error)


def error_json_response(error: PlatformError) -> JsonResponse:
    """The envelope as a plain Django response (for code outside DRF views: middleware, handlers)."""
    response = JsonResponse(envelope(error.code, error.message, error.details), status=error.status_code)
    for name, value in error.headers().items():
        response[name] = value
    return response


_json_error = error_json_response


def is_api_path(request) -> bool:
    """Whether ``request`` is for the API (answered with the envelope) rather than a page."""
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz", "/metrics")


# Django's handlers for errors raised outside DRF views (URL misses, middleware, oversize bodies).
# API paths get the envelope; everything else keeps Django's HTML pages.
def handler400(request, exception=None):
    if is_api_path(request):
        return _json_error((to_platform_error(exception) if exception else None) or MalformedRequest())
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler403(request, exception=None):
    if is_api_path(request):
        return _json_error(PermissionDenied())
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def handler404(request, exception=None):
    if is_api_path(request):
        return _json_error(NotFound(f"No endpoint at {request.path[:200]}."))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if is_api_path(request):
        # Django calls this from inside its ``except`` block, so the exception is at hand: a
        # platform error raised by a middleware (413, 429, 503...) keeps its own status and code.
        error = to_platform_error(sys.exc_info()[1]) if sys.exc_info()[1] is not None else None
        return _json_error(error or PlatformError())
    from django.views.defaults import server_error

    return server_error(request)
