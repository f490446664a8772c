"""The accounts app's error handlers: every 401/403 is budgeted, every 403 audited (aggregated).

Two doors, one treatment: the DRF exception handler (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``),
through which all API refusals pass whether authentication, a ``Requires`` permission, a CSRF
check or a service raised them; and Django's ``handler403`` (the admin and every other page
raising ``PermissionDenied``). ``accounts.denials`` counts the refusal against the caller's budget
(past it the answer is 429 with ``Retry-After``) and tallies a 403 into the one audit event of its
caller, path and minute. The platform's handlers (``agentplatform.errors``) shape the answers.
"""

from __future__ import annotations

from django.http import HttpResponse
from rest_framework.response import Response

from accounts.denials import denial_budget_exceeded, denial_record
from agentplatform import errors as platform_errors
from agentplatform.errors import api_exception_handler as platform_exception_handler

_REFUSALS = frozenset({401, 403})


def api_exception_handler(exc: BaseException, context: dict) -> Response:
    response = platform_exception_handler(exc, context)
    if response is None or response.status_code not in _REFUSALS:
        return response
    request = context.get("request")
    if response.status_code == 403:
        view = context.get("view")
        denial_record(
            request=request,
            resource_type="endpoint",
            view=view.__class__.__name__ if view is not None else "",
            required=[repr(permission) for permission in getattr(view, "permission_classes", [])],
        )
    throttled = denial_budget_exceeded(request)
    return platform_errors.error_response(throttled) if throttled is not None else response


def handler403(request, exception=None):
    """Django's 403 handler (pages outside DRF: the admin, its exports and downloads)."""
    match = getattr(request, "resolver_match", None)
    denial_record(
        request=request,
        resource_type="endpoint" if platform_errors.is_api_path(request) else "page",
        view=match.view_name if match is not None else "",
        required=[],
    )
    throttled = denial_budget_exceeded(request)
    if throttled is None:
        return platform_errors.handler403(request, exception)
    if platform_errors.is_api_path(request):
        return platform_errors.error_json_response(throttled)
    response = HttpResponse("Too many refused requests: try again later.", status=429, content_type="text/plain")
    response["Retry-After"] = str(throttled.retry_after)
    return response
