"""DRF authentication: ``Authorization: Api-Key <key>`` for agents, ``Authorization: Bearer <jwt>`` for people.

API keys are verified against a snapshot kept in the shared cache for ``API_KEY_CACHE_SECONDS``:
in steady state a key costs one cache read and a SHA-256, no database query (the user and their
permissions come from the snapshot too). Revoking a key replaces the snapshot with a tombstone
(``{}``, "no usable key") once the revocation commits, so revocation is immediate when the cache
is reachable and bounded by the TTL when it is not. A request that read the key from the
database just before the revocation committed caches what it read with ``add``, which the
tombstone refuses: it takes the tombstone instead, and cannot bring the revoked key back.

Each process also keeps a snapshot it read for ``API_KEY_LOCAL_CACHE_SECONDS`` (2 s by default),
sparing the cache round trip on an agent's following requests. A revocation (or a change of the
key's user) is published on the memo channel that every request drains first
(``accounts.cache.MemoInvalidations``), so every process drops its copy before its next request;
only when the channel is not live (Redis unreachable, or a cache that is not Redis) is the copy
not used at all. The presented key is still hashed and compared every time.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db.models.base import ModelState
from django.utils import timezone
from rest_framework import HTTP_HEADER_ENCODING
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import aware_utcnow

from accounts.cache import (
    api_key_memo,
    cache_add,
    cache_get,
    cache_get_many,
    decoded_token_memo,
    jwt_memo,
    memo_invalidations,
)
from accounts.models import ApiKey, User
from accounts.services import (
    api_key_cache_key,
    api_key_matches,
    api_key_parse,
    user_snapshot_cache_key,
    user_snapshot_load,
    user_snapshot_of,
)
from accounts.tokens import REVOKED, VERSION_CLAIM, AccessToken, access_token_revoked_in_db, denylist_cache_key
from agentplatform import compat

logger = logging.getLogger(__name__)

API_KEY_KEYWORD = "Api-Key"
_TOUCH_CACHE_KEY = "accounts:apikey-touched:{}"
# key prefix -> when this process last asked to touch it (bounded by the number of keys in use).
_touched_here: dict[str, float] = {}


def _header(request) -> str:
    value = request.META.get("HTTP_AUTHORIZATION", "")
    if isinstance(value, bytes):
        value = value.decode(HTTP_HEADER_ENCODING, errors="replace")
    return value


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Api-Key <key>``; ``request.auth`` is the ``ApiKey`` (with ``.id``)."""

    keyword = API_KEY_KEYWORD

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'

    def authenticate(self, request):
        scheme, _, raw_key = _header(request).partition(" ")
        if scheme != self.keyword:
            return None
        raw_key = raw_key.strip()
        prefix = api_key_parse(raw_key)
        if prefix is None:
            raise AuthenticationFailed("Malformed API key.")
        snapshot = self._snapshot(prefix)
        # One generic answer for unknown, wrong, revoked and expired keys: no oracle for guessing.
        if snapshot is None or not api_key_matches(raw_key, snapshot["hash"]):
            raise AuthenticationFailed("Invalid API key.")
        now = timezone.now()
        if snapshot["expires_at"] is not None and snapshot["expires_at"] <= now.timestamp():
            raise AuthenticationFailed("Invalid API key.")
        self._touch(snapshot["key_id"], prefix, now)
        return self._user_from(snapshot), self._key_from(snapshot, prefix)

    def _snapshot(self, prefix: str) -> dict | None:
        memo_key = f"k:{prefix}"
        trusted = memo_invalidations.drain()  # every revocation published so far is applied to api_key_memo
        snapshot = api_key_memo.get(memo_key) if trusted else None
        if snapshot is not None:
            return snapshot
        generation = api_key_memo.generation
        cache_key = api_key_cache_key(prefix)
        snapshot = cache_get(cache_key)
        if snapshot is None:
            api_key = ApiKey.objects.usable().select_related("user").filter(prefix=prefix, user__is_active=True).first()
            snapshot = _snapshot_of(api_key) if api_key else {}
            # add, never set: a revocation that committed after our query left its tombstone
            # (accounts.services.api_key_revoke), and the entry that is there wins over what we read.
            if not cache_add(cache_key, snapshot, settings.API_KEY_CACHE_SECONDS):
                snapshot = cache_get(cache_key, snapshot)
        if not snapshot:
            return None  # {}: "no usable key with this prefix" (or a revocation's tombstone); never kept locally
        # Not kept if this process forgot a key meanwhile: it may have been this one, revoked.
        if trusted:
            api_key_memo.set(memo_key, snapshot, generation=generation)
        return snapshot

    def _touch(self, key_id: int, prefix: str, now: datetime) -> None:
        # last_used_at moves at most once per API_KEY_TOUCH_SECONDS per key across all processes
        # (the cache add elects one writer); the process-local memo spares the cache round trip
        # on every other request.
        timestamp = now.timestamp()
        if timestamp - _touched_here.get(prefix, float("-inf")) < settings.API_KEY_TOUCH_SECONDS:
            return
        _touched_here[prefix] = timestamp
        if cache_add(_TOUCH_CACHE_KEY.format(key_id), 1, settings.API_KEY_TOUCH_SECONDS):
            ApiKey.objects.filter(pk=key_id).update(last_used_at=now)

    @staticmethod
    def _user_from(snapshot: dict) -> User:
        # A remembered snapshot (the process memos hand out the same dict) builds its user from a
        # template: copying attributes costs a tenth of Model.__init__ on every request.
        entry = _user_templates.get(id(snapshot))
        if entry is None or entry[0] is not snapshot:
            template = User(
                id=snapshot["user_id"],
                username=snapshot["username"],
                role=snapshot["role"],
                is_active=True,
                is_staff=snapshot["is_staff"],
                is_superuser=snapshot["is_superuser"],
                token_version=snapshot["token_version"],
            )
            attributes = {name: value for name, value in template.__dict__.items() if name != "_state"}
            if len(_user_templates) >= _USER_TEMPLATES_MAX:
                _user_templates.clear()
            entry = _user_templates[id(snapshot)] = (snapshot, attributes)  # the dict kept: its id stays its own
        user = User.__new__(User)
        user.__dict__.update(entry[1])
        user._state = ModelState()
        user._state.adding = False
        user._state.db = "default"
        # ModelBackend answers has_perm from this cache: the permission check costs no query.
        compat.prime_permissions(user, snapshot["permissions"])
        return user

    @staticmethod
    def _key_from(snapshot: dict, prefix: str) -> ApiKey:
        api_key = ApiKey(id=snapshot["key_id"], user_id=snapshot["user_id"], prefix=prefix)
        api_key._state.adding = False
        api_key._state.db = "default"
        return api_key


# id(snapshot) -> (the snapshot, a user's attributes built from it), for ApiKeyAuthentication._user_from.
_user_templates: dict[int, tuple[dict, dict]] = {}
_USER_TEMPLATES_MAX = 10_000


def _snapshot_of(api_key: ApiKey) -> dict:
    """The key's own fields and its user's snapshot (the same one JWT authentication reads)."""
    return {
        **user_snapshot_of(api_key.user),
        "key_id": api_key.pk,
        "hash": api_key.key_hash,
        "expires_at": api_key.expires_at.timestamp() if api_key.expires_at else None,
    }


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's Bearer authentication plus revocation: the jti denylist and the token version.

    The denylist answer for the token's ``jti`` and the user's snapshot (status, token version,
    role, permissions) come from the shared cache in one ``get_many`` (a miss falls through to the
    database), and each process remembers them for ``JWT_USER_LOCAL_CACHE_SECONDS``: steady state
    costs no round trip and no query. A logout or a token-version bump made in any process is
    published on the memo channel, which every request drains before trusting the memory
    (``accounts.cache.MemoInvalidations``), so the token is refused on its next request
    everywhere. The signature check is memoised per token text in this process (expiry is not).
    """

    def get_validated_token(self, raw_token):
        token = decoded_token_memo.get(raw_token)
        try:
            if token is None:
                token = AccessToken(raw_token)  # signature, algorithm (pinned), expiry, type, jti
                decoded_token_memo.set(raw_token, token)
            else:
                # The memo holds the token as first decoded; its own current_time is that moment.
                token.check_exp(current_time=aware_utcnow())
        except TokenError as exc:
            raise AuthenticationFailed(f"Access token rejected: {exc}", code="token_not_valid") from None
        return token

    def get_user(self, validated_token) -> User:
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        jti = str(validated_token.get(api_settings.JTI_CLAIM, ""))
        memo_user, memo_token = f"u:{user_id}", f"t:{jti}"
        trusted = memo_invalidations.drain()  # every change published so far is applied to jwt_memo
        if trusted:
            snapshot = jwt_memo.get(memo_user)
            if snapshot is not None and jwt_memo.get(memo_token) is not None:
                return self._user_checked(snapshot, validated_token)
        generation = jwt_memo.generation
        denylist_key, snapshot_key = denylist_cache_key(jti), user_snapshot_cache_key(user_id)
        found = cache_get_many(denylist_key, snapshot_key)
        # A miss was already a cache read (get_many): the database decides, without reading the cache again.
        revoked = (
            found[denylist_key] == REVOKED if denylist_key in found else access_token_revoked_in_db(validated_token)
        )
        if revoked:
            raise AuthenticationFailed("This token has been revoked.", code="token_revoked")
        snapshot = found[snapshot_key] if snapshot_key in found else user_snapshot_load(user_id=user_id)
        user = self._user_checked(snapshot, validated_token)
        if trusted:
            # Not kept if a message arrived since ``generation``: what we read may be what it dropped.
            jwt_memo.set(memo_user, snapshot, generation=generation)
            jwt_memo.set(memo_token, True, generation=generation)
        return user

    @staticmethod
    def _user_checked(snapshot: dict, validated_token) -> User:
        if not snapshot:
            raise AuthenticationFailed("User not found", code="user_not_found")
        if not snapshot["is_active"]:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        if validated_token.get(VERSION_CLAIM) != snapshot["token_version"]:
            raise AuthenticationFailed(
                "This token was issued before a password change or deactivation.", code="token_revoked"
            )
        return ApiKeyAuthentication._user_from(snapshot)
