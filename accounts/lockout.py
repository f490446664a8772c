"""Brute-force lockout with django-axes, for the admin login and the API token endpoint alike.

After ``LOGIN_FAILURE_LIMIT`` failures for one username, and separately from one client IP,
further attempts are refused for ``LOGIN_LOCKOUT_MINUTES`` even with the right password. Failures
count while each comes within ``LOGIN_FAILURE_WINDOW_MINUTES`` of the previous one for the same
username/IP (axes keeps one row per client with a running count and the last failure's time).

The client IP is the trusted-proxy resolver's (``agentplatform.client_ip``), the one rate limits
use: axes' own default believes ``X-Forwarded-For`` from anyone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Max, Q
from django.dispatch import receiver
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone

from agentplatform.client_ip import get_client_ip
from agentplatform.errors import RateLimited, envelope
from audit import services as audit_services

logger = logging.getLogger(__name__)


class LoginLocked(RateLimited):
    code = "login_locked"
    default_message = "Too many failed logins: try again later."


def client_ip(request) -> str:
    """``AXES_CLIENT_IP_CALLABLE``: the client address as the trusted-proxy resolver sees it."""
    return get_client_ip(request)  # a DRF Request reads META from its HttpRequest


def _attempts_of(request, credentials: dict | None):
    username = get_client_username(request, credentials)
    ip_address = getattr(request, "axes_ip_address", None) or client_ip(request)
    match = Q(ip_address=ip_address)
    if username:
        match |= Q(username=username)
    return AccessAttempt.objects.filter(match)


def lockout_retry_after(request, credentials: dict | None = None) -> int:
    """Seconds until the lock on this username/IP lifts (counted from the latest failure)."""
    cool_off = get_cool_off(request) or timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
    latest = _attempts_of(request, credentials).aggregate(latest=Max("attempt_time"))["latest"]
    if latest is None:
        return int(cool_off.total_seconds())
    return max(1, int((latest + cool_off - timezone.now()).total_seconds()) + 1)


class LoginAttemptHandler(AxesDatabaseHandler):
    """axes' database handler with a failure window separate from the cool-down."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is not None:
            self._forget_failures_outside_window(request, credentials)
        return super().user_login_failed(sender, credentials, request, **kwargs)

    @staticmethod
    def _forget_failures_outside_window(request, credentials: dict | None) -> None:
        window_start = timezone.now() - timedelta(minutes=settings.LOGIN_FAILURE_WINDOW_MINUTES)
        # Counts that never reached the limit and whose last failure left the window start over;
        # rows at the limit are locks, which axes expires after the cool-down itself.
        _attempts_of(request, credentials).filter(
            attempt_time__lt=window_start, failures_since_start__lt=settings.AXES_FAILURE_LIMIT
        ).delete()


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After``; the error envelope on API paths."""
    retry_after = lockout_retry_after(request, credentials)
    if _is_api(request):
        error = LoginLocked(retry_after=retry_after)
        response = JsonResponse(envelope(error.code, error.message, {"retry_after": retry_after}), status=429)
    else:
        response = HttpResponse(
            render_to_string("accounts/locked_out.html", {"retry_after_minutes": max(1, retry_after // 60)}),
            status=429,
        )
    response["Retry-After"] = str(retry_after)
    return response


@receiver(user_locked_out, dispatch_uid="accounts.user_locked_out")
def audit_lockout(sender, request, username, ip_address, **kwargs) -> None:
    audit_services.audit_log(
        actor=None,
        actor_label=username or ip_address or "anonymous",
        action="auth.locked_out",
        resource_type="user",
        resource_id=username or "",
        severity="warning",
        success=False,
        details={"username": username, "ip_address": ip_address, "path": getattr(request, "path", "")},
        request=request,
        durable=True,
    )
