"""Every 403 is written to the audit log, once, as a durable ``auth.permission_denied`` event.

Two doors, one event: the DRF exception handler (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``), through
which all API refusals pass whether a ``Requires`` permission, a CSRF check or a service raised
them; and Django's ``handler403`` (the admin and every other page raising ``PermissionDenied``).
The platform's handlers (``agentplatform.errors``) shape the answers. Durable: the denial is kept
when the refused request's transaction (``ATOMIC_REQUESTS``) rolls back.
"""

from __future__ import annotations

from rest_framework.response import Response

from agentplatform import errors as platform_errors
from agentplatform.errors import api_exception_handler as platform_exception_handler
from audit import services as audit_services


def audit_denial(request, *, resource_type: str, view: str, required: list[str]) -> None:
    user = getattr(request, "user", None)
    audit_services.audit_log(
        actor=user if getattr(user, "is_authenticated", False) else None,
        action="auth.permission_denied",
        durable=True,
        resource_type=resource_type,
        resource_id=getattr(request, "path", "").replace("\x00", "\\x00")[:200],  # "%00" in a probed URL
        severity="warning",
        success=False,
        details={"method": getattr(request, "method", ""), "view": view, "required": required},
        request=request,
    )


def api_exception_handler(exc: BaseException, context: dict) -> Response:
    response = platform_exception_handler(exc, context)
    if response is not None and response.status_code == 403:
        view = context.get("view")
        audit_denial(
            context.get("request"),
            resource_type="endpoint",
            view=view.__class__.__name__ if view is not None else "",
            required=[repr(permission) for permission in getattr(view, "permission_classes", [])],
        )
    return response


def handler403(request, exception=None):
    """Django's 403 handler (pages outside DRF: the admin, its exports and downloads)."""
    match = getattr(request, "resolver_match", None)
    audit_denial(
        request,
        resource_type="endpoint" if platform_errors.is_api_path(request) else "page",
        view=match.view_name if match is not None else "",
        required=[],
    )
    return platform_errors.handler403(request, exception)
