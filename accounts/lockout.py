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
password is looked at, are not counted and do not extend the lock. Each password check is counted
*before* it runs, under a row lock on its counters (``login_attempt_reserve``), and given back if
it succeeds: parallel guesses cannot all pass the check before the first failure is counted.

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
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import LoginFailureCount
from agentplatform.client_ip import get_client_ip
from agentplatform.errors import RateLimited, envelope, is_api_path
from agentplatform.ratelimit import enforce
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
    """The client of this login attempt (remembered on the request: backend and view agree)."""
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


@dataclass(slots=True)
class LoginAttempt:
    """A password check reserved against the counters: counted as a failure until it succeeds.

    ``previous`` remembers each counter's last failure before this attempt, so a success can give
    the window back as it was; ``locking`` holds the counters this attempt's failure locks.
    """

    client: LoginClient
    at: datetime
    previous: dict[str, datetime]
    locking: list[LoginFailureCount]

    def lock_seconds(self) -> int | None:
        return _seconds_until(self.locking[0].locked_until, self.at) if self.locking else None


def login_attempt_reserve(*, client: LoginClient) -> LoginAttempt | int:
    """Reserves one password check for ``client``, or returns the seconds until its lock lifts.

    Checking the lock and counting the failure after the password check leaves a gap: parallel
    wrong passwords all pass the check before the first one is counted. So the attempt is counted
    *before* the check, under a row lock on every counter it is checked against (always in the
    same order, so two attempts never wait on each other crosswise): the attempt that reaches
    ``LOGIN_FAILURE_LIMIT`` sets the lock at once, and every attempt after it is refused, however
    many arrive together. A successful check gives its reservation back (``login_attempt_release``).
    """
    now = timezone.now()
    window = timedelta(minutes=settings.LOGIN_FAILURE_WINDOW_MINUTES)
    with transaction.atomic():
        rows = []
        for key, scope, label in sorted(client.counters()):  # the order every reservation and release locks in
            row, _ = LoginFailureCount.objects.select_for_update().get_or_create(
                key=key, defaults={"scope": scope, "label": label, "last_failure_at": now}
            )
            rows.append(row)
        locks = [row.locked_until for row in rows if row.locked_until is not None and row.locked_until > now]
        if locks:
            return _seconds_until(max(locks), now)  # refused: not counted, the lock not extended
        attempt = LoginAttempt(client=client, at=now, previous={}, locking=[])
        for row in rows:
            if row.locked_until is not None or row.last_failure_at < now - window:
                row.failures, row.locked_until = 0, None  # a lock that ended or a count that went stale
            attempt.previous[row.key] = row.last_failure_at
            row.failures += 1
            row.last_failure_at = now
            if row.failures >= settings.LOGIN_FAILURE_LIMIT:
                row.locked_until = now + timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
                attempt.locking.append(row)
            row.save(update_fields=["failures", "last_failure_at", "locked_until"])
    return attempt


def login_attempt_release(*, attempt: LoginAttempt) -> None:
    """The reserved check succeeded: uncounts it, and lifts the lock it set (if nothing moved it since)."""
    with transaction.atomic():
        rows = LoginFailureCount.objects.select_for_update().filter(key__in=list(attempt.previous)).order_by("key")
        for row in rows:
            row.failures = max(0, row.failures - 1)
            if any(row.key == locking.key and row.locked_until == locking.locked_until for locking in attempt.locking):
                row.locked_until = None
            if row.last_failure_at == attempt.at:
                row.last_failure_at = attempt.previous[row.key]
            row.save(update_fields=["failures", "last_failure_at", "locked_until"])


def login_attempt_failed(*, attempt: LoginAttempt, request=None) -> int | None:
    """The reserved check failed (it is counted already): audits the locks it set; returns the lock's seconds."""
    for row in attempt.locking:
        _audit_lockout(row, client=attempt.client, request=request)
    return attempt.lock_seconds()


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
    """First in ``AUTHENTICATION_BACKENDS``: the password check itself, under the lockout.

    It reserves the attempt (``login_attempt_reserve``) and only then asks ``ModelBackend`` for the
    password check, so parallel guesses cannot pass the lock together. A locked or rate-limited
    client and a wrong password raise ``PermissionDenied``, which makes ``authenticate`` stop (no
    second check by the ``ModelBackend`` listed after it, which stays for permissions and for the
    sessions that name it) and send ``user_login_failed``; the admin's login form then fails and
    ``LoginLockMiddleware`` answers 429 for a lock. The token endpoint and the admin login both go
    through it, so both get the per-target rate limit and the lockout. Deliberately not a
    ``BaseBackend``: it answers no permissions, only ``get_user`` for the sessions it logged in.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or username is None:
            return None  # programmatic: ModelBackend, next, checks alone
        client = login_client(request, username)
        try:
            # The token endpoint's throttle limits each client IP; this limits guesses at one
            # account from many IPs, per device token for a device that logged in before (so a
            # flood on the name cannot use up its owner's budget).
            enforce("auth.token", client.rate_limit_key())
        except RateLimited as refusal:
            request.login_refusal = refusal
            request.login_locked_seconds = refusal.retry_after
            raise PermissionDenied("login rate-limited") from None
        if not settings.LOGIN_LOCKOUT_ENABLED:
            return None  # switched off: ModelBackend, next, checks alone
        attempt = login_attempt_reserve(client=client)
        if isinstance(attempt, int):
            request.login_locked_seconds = attempt
            raise PermissionDenied("login locked")
        user = _password_backend.authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            seconds = login_attempt_failed(attempt=attempt, request=request)
            if seconds is not None:
                request.login_locked_seconds = seconds  # the failure that reaches the limit answers 429 already
            raise PermissionDenied("wrong credentials")
        login_attempt_release(attempt=attempt)
        return user

    def get_user(self, user_id):
        return _password_backend.get_user(user_id)


_password_backend = ModelBackend()


@receiver(user_logged_in, dispatch_uid="accounts.lockout.logged_in")
def issue_device_cookie(sender, request, user, **kwargs) -> None:
    """A session login (the admin) trusts its browser: the middleware sets the device cookie."""
    if request is not None and getattr(request, "path", ""):
        request.device_token_issued = device_token_issue(username=user.get_username())


def lockout_response(request, retry_after: int) -> HttpResponse:
    """429 with ``Retry-After``: the error envelope on API paths, a page elsewhere."""
    if is_api_path(request):
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
