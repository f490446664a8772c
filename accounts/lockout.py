"""Brute-force protection for the admin login and the token endpoint, with device tokens.

OWASP's "Slow down online guessing attacks with device cookies": a lock on a username alone lets
anyone lock anyone out (five wrong passwords from anywhere). Here a successful login hands the
client a signed *device token* naming the username (a cookie for the admin, ``device_token`` in
the token response for API clients, who send it back in ``X-Device-Token``). A login attempt is

- **trusted** when it carries a valid device token for the username it tries: its failures count
  against that device token only, and only a lock on that device token refuses it;
- **untrusted** otherwise: its failures count against the username and against the client IP,
  and a lock on either refuses every untrusted attempt at that username / from that IP.

So an attack on a name locks out the attacker (and new devices), never a device its owner has
logged in from. ``LOGIN_FAILURE_LIMIT`` failures, each within ``LOGIN_FAILURE_WINDOW_MINUTES`` of
the previous, lock for ``LOGIN_LOCKOUT_MINUTES``; attempts while locked are refused before the
password is looked at, are not counted and do not extend the lock.

The counters live in the database (``LoginFailureCount``), so a cache restart does not hand out
fresh guesses. The client IP is the trusted-proxy resolver's (``agentplatform.client_ip``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max, Q
from django.dispatch import receiver
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import LoginFailureCount
from agentplatform.client_ip import get_client_ip
from agentplatform.errors import RateLimited, envelope
from audit import services as audit_services

logger = logging.getLogger(__name__)

DEVICE_COOKIE_NAME = "agentops_device"
_DEVICE_TOKEN_SALT = "accounts.lockout.device-token"  # noqa: S105  (a signing namespace, not a secret)
_MAX_DEVICE_TOKEN_CHARS = 512  # a real one is ~110: anything longer is not worth verifying
Scope = LoginFailureCount.Scope


class LoginLocked(RateLimited):
    code = "login_locked"
    default_message = "Too many failed logins: try again later."


# --- device tokens ----------------------------------------------------------------------------


def _normalised(username: str) -> str:
    return (username or "").strip().casefold()[:150]


def device_token_issue(*, username: str) -> str:
    """A signed token saying "this client logged in as ``username``", with a fresh random nonce."""
    payload = {"u": _normalised(username), "n": secrets.token_urlsafe(16)}
    return signing.dumps(payload, salt=_DEVICE_TOKEN_SALT, compress=False)


def _device_nonce(raw: str | None, username: str) -> str | None:
    """The nonce of ``raw`` if it is a valid, unexpired device token issued for ``username``."""
    if not raw or len(raw) > _MAX_DEVICE_TOKEN_CHARS:
        return None
    try:
        payload = signing.loads(raw, salt=_DEVICE_TOKEN_SALT, max_age=timedelta(days=settings.DEVICE_TOKEN_DAYS))
    except signing.BadSignature:  # also SignatureExpired
        return None
    if not isinstance(payload, dict) or payload.get("u") != _normalised(username):
        return None
    nonce = payload.get("n")
    return nonce if isinstance(nonce, str) and nonce else None


# --- who is trying ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginClient:
    """One login attempt's client: the username it tries, its IP, and its device token if valid for it."""

    username: str
    ip_address: str
    device: str | None

    @property
    def trusted(self) -> bool:
        return self.device is not None

    def counters(self) -> list[tuple[str, str, str]]:
        """``(key, scope, label)`` of every counter an attempt of this client is checked and counted against."""
        if self.device is not None:
            return [(f"device:{self.device}", Scope.DEVICE, _normalised(self.username))]
        digest = hashlib.sha256(_normalised(self.username).encode()).hexdigest()[:40]
        return [
            (f"username:{digest}", Scope.USERNAME, _normalised(self.username)),
            (f"ip:{self.ip_address}", Scope.IP, self.ip_address),
        ]

    def rate_limit_key(self) -> str:
        """The token endpoint's per-target rate-limit bucket: the device, else the username."""
        return self.counters()[0][0]


def login_client(request, username: str) -> LoginClient:
    """The client of this login attempt (remembered on the request: backend, receiver and view agree)."""
    remembered = getattr(request, "_login_client", None)
    if remembered is not None and remembered.username == username:
        return remembered
    # X-Device-Token from API clients, the cookie from the admin's browsers.
    raw = request.META.get("HTTP_X_DEVICE_TOKEN") or request.COOKIES.get(DEVICE_COOKIE_NAME)
    client = LoginClient(
        username=username,
        ip_address=get_client_ip(request),
        device=_device_nonce(raw, username),
    )
    request._login_client = client
    return client


# --- locks and failures -----------------------------------------------------------------------


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds()) + 1)


def login_lock_seconds(client: LoginClient, *, now: datetime | None = None) -> int | None:
    """Seconds until the lock that refuses this client lifts, or None when it may try."""
    now = now or timezone.now()
    keys = [key for key, _, _ in client.counters()]
    until = LoginFailureCount.objects.filter(key__in=keys, locked_until__gt=now).aggregate(until=Max("locked_until"))[
        "until"
    ]
    return _seconds_until(until, now) if until is not None else None


def login_failure_record(*, client: LoginClient, request=None) -> int | None:
    """Counts one failed password check; returns the lock's seconds if this failure started a lock."""
    now = timezone.now()
    window = timedelta(minutes=settings.LOGIN_FAILURE_WINDOW_MINUTES)
    locked: list[LoginFailureCount] = []
    with transaction.atomic():
        for key, scope, label in client.counters():
            row, _ = LoginFailureCount.objects.select_for_update().get_or_create(
                key=key, defaults={"scope": scope, "label": label, "last_failure_at": now}
            )
            if row.locked_until is not None and row.locked_until > now:
                continue  # already locked: not counted again, and the lock is not extended
            if row.locked_until is not None or row.last_failure_at < now - window:
                row.failures, row.locked_until = 0, None  # a lock that ended or a count that went stale
            row.failures += 1
            row.last_failure_at = now
            if row.failures >= settings.LOGIN_FAILURE_LIMIT:
                row.locked_until = now + timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
                locked.append(row)
            row.save(update_fields=["failures", "last_failure_at", "locked_until"])
    for row in locked:
        _audit_lockout(row, client=client, request=request)
    return _seconds_until(locked[0].locked_until, now) if locked else None


def _audit_lockout(row: LoginFailureCount, *, client: LoginClient, request) -> None:
    audit_services.audit_log(
        actor=None,
        actor_label=client.username or client.ip_address or "anonymous",
        action="auth.lockout",
        resource_type="user",
        resource_id=_normalised(client.username),
        severity="warning",
        success=False,
        details={
            "scope": row.scope,  # device | username | ip: which kind of client is locked
            "username": _normalised(client.username),
            "ip_address": client.ip_address,
            "failures": row.failures,
            "locked_until": row.locked_until.isoformat(),
            "path": getattr(request, "path", ""),
        },
        request=request,
        durable=True,
    )


def login_failures_cleanup(*, now: datetime | None = None) -> int:
    """Deletes counters whose lock is over and whose last failure left the window; returns how many."""
    now = now or timezone.now()
    stale_before = now - timedelta(minutes=settings.LOGIN_FAILURE_WINDOW_MINUTES)
    stale = LoginFailureCount.objects.filter(last_failure_at__lt=stale_before).filter(
        Q(locked_until__isnull=True) | Q(locked_until__lte=now)
    )
    deleted, _ = stale.delete()
    return deleted


# --- Django's authentication machinery: the admin login and ``authenticate`` ------------------


class LoginLockBackend:
    """First in ``AUTHENTICATION_BACKENDS``: refuses a locked client before any password check.

    Raising ``PermissionDenied`` makes ``authenticate`` stop and return None (it sends
    ``user_login_failed``, which does not count a refused attempt); the admin's login form then
    fails and ``LoginLockMiddleware`` answers 429 instead. Deliberately not a ``BaseBackend``: with
    no ``get_user`` or permission methods, Django never picks it for a session (``force_login``
    takes the first backend that has ``get_user``) nor asks it about permissions.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or username is None or not settings.LOGIN_LOCKOUT_ENABLED:
            return None
        seconds = login_lock_seconds(login_client(request, username))
        if seconds is not None:
            request.login_locked_seconds = seconds
            raise PermissionDenied("login locked")
        return None


@receiver(user_login_failed, dispatch_uid="accounts.lockout.login_failed")
def count_login_failure(sender, credentials: dict, request=None, **kwargs) -> None:
    if request is None or not settings.LOGIN_LOCKOUT_ENABLED or getattr(request, "login_locked_seconds", None):
        return  # programmatic, disabled, or refused by the lock (not a password check)
    username = str(credentials.get("username", ""))
    seconds = login_failure_record(client=login_client(request, username), request=request)
    if seconds is not None:
        request.login_locked_seconds = seconds  # the failure that reaches the limit answers 429 already


@receiver(user_logged_in, dispatch_uid="accounts.lockout.logged_in")
def issue_device_cookie(sender, request, user, **kwargs) -> None:
    """A session login (the admin) trusts its browser: the middleware sets the device cookie."""
    if request is not None and getattr(request, "path", ""):
        request.device_token_issued = device_token_issue(username=user.get_username())


def lockout_response(request, retry_after: int) -> HttpResponse:
    """429 with ``Retry-After``: the error envelope on API paths, a page elsewhere."""
    if request.path.startswith("/api/"):
        error = LoginLocked(retry_after=retry_after)
        response = JsonResponse(envelope(error.code, error.message, {"retry_after": retry_after}), status=429)
    else:
        response = HttpResponse(
            render_to_string("accounts/locked_out.html", {"retry_after_minutes": max(1, retry_after // 60)}),
            status=429,
        )
    response["Retry-After"] = str(retry_after)
    return response


class LoginLockMiddleware:
    """Turns a locked login into the 429 answer and hands a browser that logged in its device cookie."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        seconds = getattr(request, "login_locked_seconds", None)
        if seconds:
            return lockout_response(request, seconds)
        token = getattr(request, "device_token_issued", None)
        if token:
            response.set_cookie(
                DEVICE_COOKIE_NAME,
                token,
                max_age=settings.DEVICE_TOKEN_DAYS * 24 * 3600,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response
