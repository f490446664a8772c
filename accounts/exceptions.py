"""The DRF exception handler with one addition: every 403 is written to the audit log, once.

The platform's handler (``agentplatform.errors.api_exception_handler``) shapes the envelope;
this wrapper (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``) is the single place all API refusals pass
through, whether a ``Requires`` permission, a CSRF check or a service raised them.
"""

from __future__ import annotations

from rest_framework.response import Response

from agentplatform.errors import api_exception_handler as platform_exception_handler
from audit import services as audit_services


def api_exception_handler(exc: BaseException, context: dict) -> Response:
    response = platform_exception_handler(exc, context)
    if response is not None and response.status_code == 403:
        request = context.get("request")
        view = context.get("view")
        user = getattr(request, "user", None)
        required = [repr(permission) for permission in getattr(view, "permission_classes", [])]
        audit_services.audit_log(
            actor=user if getattr(user, "is_authenticated", False) else None,
            action="auth.permission_denied",
            resource_type="endpoint",
            resource_id=getattr(request, "path", "")[:200],
            severity="warning",
            success=False,
            details={
                "method": getattr(request, "method", ""),
                "view": view.__class__.__name__ if view is not None else "",
                "required": required,
            },
            request=request,
        )
    return response
