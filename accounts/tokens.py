"""JWT life cycle on top of simplejwt: issue, rotate, revoke, and keep the revocation tables trim.

simplejwt alone leaves three gaps this module closes:

- **Rotation races.** Its refresh serializer checks the blacklist, then blacklists with
  ``get_or_create``: parallel refreshes of one token all pass. Here the blacklist row is inserted
  first and its unique constraint decides the single winner; the losers are reuse, audited.
- **Access tokens are never checked against anything.** Logout puts the presenting access token's
  ``jti`` in ``RevokedAccessToken`` (the database, so a cache restart cannot revive it) with the
  shared cache in front, so the check costs no query in steady state.
- **Password changes and deactivation.** Tokens carry the user's ``token_version`` ("ver"), which
  both bump; the authentication class refuses a token whose version is stale.

Refresh tokens are registered in simplejwt's ``OutstandingToken`` without their text: the table
needs the ``jti``, and a copy of every live refresh token in the database would be a credential
store for whoever can read it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken as SimpleAccessToken
from rest_framework_simplejwt.tokens import RefreshToken as SimpleRefreshToken
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.cache import cache_add, cache_set, memo_invalidations
from accounts.lockout import LoginLocked, device_token_issue, login_client, login_failures_cleanup
from accounts.models import RevokedAccessToken, User
from accounts.services import user_snapshot_refresh
from agentplatform.errors import AuthenticationRequired, PermissionDenied, ValidationFailed
from audit import services as audit_services

logger = logging.getLogger(__name__)

VERSION_CLAIM = "ver"
ROLE_CLAIM = "role"
REVOKED = "revoked"
_VALID = "valid"


class AccessToken(SimpleAccessToken):
    """simplejwt's access token (the class ``SIMPLE_JWT["AUTH_TOKEN_CLASSES"]`` names)."""


class RefreshToken(SimpleRefreshToken):
    access_token_class = AccessToken

    def check_blacklist(self) -> None:
        # Deliberately not checked while decoding: ``token_refresh`` decides reuse with one unique
        # insert (checking first is the race this module exists to close) and audits it.
        return None

    @classmethod
    def for_user(cls, user: User) -> RefreshToken:
        token = Token.for_user.__func__(cls, user)  # skip BlacklistMixin.for_user: it stores the text
        token[VERSION_CLAIM] = user.token_version
        token[ROLE_CLAIM] = user.role
        OutstandingToken.objects.create(
            user=user,
            jti=token[api_settings.JTI_CLAIM],
            token="",
            created_at=token.current_time,
            expires_at=datetime_from_epoch(token["exp"]),
        )
        return token


def token_pair_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _invalid(message: str, code: str = "token_not_valid") -> AuthenticationRequired:
    error = AuthenticationRequired(message)
    error.code = code
    return error


def _decode_refresh(raw: str) -> RefreshToken:
    try:
        return RefreshToken(raw)
    except TokenError as exc:
        raise _invalid(f"Refresh token rejected: {exc}") from None


def _active_user_for(token: Token) -> User:
    """The user a token names, if it is still active."""
    user = User.objects.filter(pk=token.get(api_settings.USER_ID_CLAIM)).first()
    if user is None or not user.is_active:
        raise _invalid("The user of this token is missing or inactive.", "user_inactive")
    return user


def _check_version(token: Token, user: User) -> None:
    if token.get(VERSION_CLAIM) != user.token_version:
        raise _invalid("This token was issued before a password change or deactivation.", "token_revoked")


def user_tokens_revoke(*, user: User, issued_version: int | None = None) -> bool:
    """Retires every token of ``user`` by bumping its token version; True if this call bumped it.

    With ``issued_version``, bumps only while the version is still that one: the tokens of that
    generation are already dead otherwise, and concurrent callers (or an attacker replaying an old
    token) must not log the user out again and again.
    """
    users = User.objects.filter(pk=user.pk)
    if issued_version is not None:
        users = users.filter(token_version=issued_version)
    bumped = users.update(token_version=F("token_version") + 1) > 0
    if bumped:
        user.refresh_from_db(fields=["token_version"])
        user_snapshot_refresh(user_id=user.pk)  # an update() sends no post_save
    return bumped


def _outstanding_for(token: RefreshToken, user: User | None) -> OutstandingToken:
    outstanding, _ = OutstandingToken.objects.get_or_create(
        jti=token[api_settings.JTI_CLAIM],
        defaults={
            "user": user,
            "token": "",
            "created_at": token.current_time,
            "expires_at": datetime_from_epoch(token["exp"]),
        },
    )
    return outstanding


def _blacklist_once(outstanding: OutstandingToken) -> bool:
    """Blacklists a refresh token; False if it already was (the unique row decides, no race)."""
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError:
        return False
    return True


def token_refresh(*, raw_refresh: str, request=None) -> dict[str, str]:
    """Rotates a refresh token: the presented one is blacklisted, a new pair is returned.

    Of any number of concurrent refreshes of one token exactly one succeeds. Any other use of a
    rotated (or logged-out) token means two parties hold it, the owner and a thief, and nothing
    tells which one is presenting it now: every token of the user is revoked (the token version is
    bumped, so the pair the other party got at rotation dies too) and the reuse is audited.
    """
    refresh = _decode_refresh(raw_refresh)
    user = _active_user_for(refresh)
    with transaction.atomic():
        # One transaction: if issuing the new pair fails, the old token is not burnt. The
        # blacklist insert comes first, so a reused token is recognised as reuse even when its
        # version is stale (a reuse already revoked everything).
        rotated = _blacklist_once(_outstanding_for(refresh, user))
        if rotated:
            _check_version(refresh, user)
            pair = token_pair_for(user)
    if not rotated:
        revoked = user_tokens_revoke(user=user, issued_version=refresh.get(VERSION_CLAIM))
        audit_services.audit_log(
            actor=user,
            action="auth.refresh_reuse_detected",
            resource_type="token",
            resource_id=refresh[api_settings.JTI_CLAIM],
            severity="warning",
            success=False,
            details={
                "reason": "refresh token already rotated or revoked",
                "everything_revoked": revoked,
                "user_version": user.token_version,
            },
            request=request,
            durable=True,
        )
        raise _invalid("This refresh token has already been used or revoked.", "token_reused")
    return pair


def token_obtain(*, request, username: str, password: str) -> dict[str, str]:
    """Exchanges a username and password for a token pair and a device token, under the lockout.

    A locked client is refused before the password is looked at (``accounts.lockout``: the lock
    holds even for the right password, and a device token its owner got at an earlier login
    escapes a lock on the username); each check is counted before it runs, and failures reach the
    audit log through Django's ``user_login_failed`` signal, which ``authenticate`` sends.
    """
    # The per-target rate limit and the lockout both live in the authentication backend
    # (accounts.lockout.LoginLockBackend), so the admin login gets them too.
    user = authenticate(request=request, username=username, password=password)
    if user is None:
        refusal = getattr(request, "login_refusal", None)
        if refusal is not None:
            raise refusal
        seconds = getattr(request, "login_locked_seconds", None)
        if seconds:  # locked before the check, or this failure reached the limit
            raise LoginLocked(retry_after=seconds)
        raise _invalid("No active account found with the given credentials.", "authentication_failed")
    pair = token_pair_for(user)
    pair["device_token"] = device_token_issue(username=user.get_username())
    audit_services.audit_log(
        actor=user,
        action="auth.logged_in",
        resource_type="user",
        resource_id=user.pk,
        details={"via": "token", "trusted_device": login_client(request, username).trusted},
        request=request,
        durable=True,
    )
    return pair


# --- access-token denylist ----------------------------------------------------------------------


def denylist_cache_key(jti: str) -> str:
    return f"accounts:jwt-denied:{jti}"


def _seconds_left(expires_at: datetime) -> int:
    return max(1, int((expires_at - timezone.now()).total_seconds()) + 1)


def access_token_revoke(*, token: Token, user: User | None) -> None:
    """Puts an access token's ``jti`` on the denylist until the token would have expired anyway."""
    jti = str(token[api_settings.JTI_CLAIM])
    expires_at = datetime_from_epoch(token["exp"])
    RevokedAccessToken.objects.get_or_create(jti=jti, defaults={"user": user, "expires_at": expires_at})
    # set, not add: overwrites a "valid" marker another request may have cached a moment ago.
    cache_set(denylist_cache_key(jti), REVOKED, _seconds_left(expires_at))
    memo_invalidations.publish(f"t:{jti}")  # every process drops its "not revoked" memory of it


def access_token_revoked_in_db(token: Token) -> bool:
    """The database's answer on a cache miss, cached for the token's remaining life."""
    jti = str(token.get(api_settings.JTI_CLAIM, ""))
    revoked = RevokedAccessToken.objects.filter(jti=jti).exists()
    # add, not set: if a logout cached "revoked" since our query, it must win.
    cache_add(denylist_cache_key(jti), REVOKED if revoked else _VALID, _seconds_left(datetime_from_epoch(token["exp"])))
    return revoked


def token_logout(*, user: User, raw_refresh: str, access_token: Token | None, request=None) -> None:
    """Revokes the refresh token and the access token presenting it, at once."""
    try:
        refresh = RefreshToken(raw_refresh)
    except TokenError as exc:
        raise ValidationFailed("The refresh token is not valid.", details={"refresh": [str(exc)]}) from None
    if str(refresh.get(api_settings.USER_ID_CLAIM)) != str(user.pk):
        raise PermissionDenied("This refresh token belongs to another user.")
    with transaction.atomic():
        _blacklist_once(_outstanding_for(refresh, user))
        if access_token is not None:
            access_token_revoke(token=access_token, user=user)
    audit_services.audit_log(
        actor=user,
        action="auth.logged_out",
        resource_type="user",
        resource_id=user.pk,
        details={"refresh_jti": refresh[api_settings.JTI_CLAIM]},
        request=request,
    )


# --- cleanup -------------------------------------------------------------------------------------

CLEANUP_BATCH_SIZE = 5_000


def token_cleanup(*, now: datetime | None = None, batch_size: int = CLEANUP_BATCH_SIZE) -> int:
    """Deletes expired outstanding/blacklisted refresh tokens, denylisted access tokens and spent login counters.

    In batches of ``batch_size`` ids, each its own short transaction, so a large backlog never
    holds long locks. Returns the number of rows deleted (blacklist rows go with their token).
    """
    now = now or timezone.now()
    # A token that expired a moment ago may still be in flight; keep a margin of the leeway.
    cutoff = now - timedelta(seconds=max(60, settings.SIMPLE_JWT.get("LEEWAY", 0)))
    deleted = 0
    for queryset in (
        OutstandingToken.objects.filter(expires_at__lt=cutoff),
        RevokedAccessToken.objects.filter(expires_at__lt=cutoff),
    ):
        while True:
            ids = list(queryset.values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            with transaction.atomic():
                count, _ = queryset.model.objects.filter(pk__in=ids).delete()
            deleted += count
    deleted += login_failures_cleanup(now=now)
    if deleted:
        logger.info("token cleanup removed %d expired rows", deleted)
    return deleted
