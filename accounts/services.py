"""Writes for identities: users, role groups and agent API keys.

JWT life-cycle services live in ``accounts.tokens``; login lockout in ``accounts.lockout``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.cache import cache_add, cache_delete, cache_set, memo_invalidations
from accounts.models import ApiKey, Role, User
from accounts.roles import ADMIN_ALL, ROLE_PERMISSIONS, role_group_name
from agentplatform.errors import Conflict, ValidationFailed
from audit import services as audit_services

# What every key starts with: lets secret scanners (and people) recognise a leaked key.
API_KEY_TAG = "apk_"
_PREFIX_BYTES = 6  # 8 url-safe characters: enough to make collisions practically impossible
_SECRET_BYTES = 32  # 256 bits


# --- roles and groups -------------------------------------------------------------------------


def role_groups_sync(*, stdout=None) -> None:
    """Creates the role groups and grants each the permissions ``ROLE_PERMISSIONS`` lists.

    Runs after every ``migrate`` (``post_migrate``), once all permissions exist. Additive: a
    permission an admin granted to a group in the admin stays; one listed in the table that an
    admin removed comes back at the next deploy (the table is the reviewed source of truth).
    """
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role_group_name(role))
        if role == Role.ADMIN and ADMIN_ALL:
            wanted = Permission.objects.all()
        else:
            wanted = _permissions_named(ROLE_PERMISSIONS[role], stdout=stdout)
        group.permissions.add(*wanted)


def _permissions_named(names: set[str], *, stdout=None) -> list[Permission]:
    by_app: dict[str, set[str]] = {}
    for name in names:
        app_label, _, codename = name.partition(".")
        by_app.setdefault(app_label, set()).add(codename)
    found: list[Permission] = []
    for app_label, codenames in by_app.items():
        rows = list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
        missing = codenames - {row.codename for row in rows}
        if missing and stdout is not None:
            stdout.write(f"roles: unknown permissions {sorted(f'{app_label}.{c}' for c in missing)}")
        found.extend(rows)
    return found


def user_role_group_sync(*, user: User) -> None:
    """Puts ``user`` in exactly the group of its role (other groups an admin added are kept)."""
    role_groups = {role_group_name(role) for role in Role}
    group, _ = Group.objects.get_or_create(name=role_group_name(user.role))
    stale = user.groups.filter(name__in=role_groups - {group.name})
    if stale.exists():
        user.groups.remove(*stale)
    user.groups.add(group)


# --- users ------------------------------------------------------------------------------------


def user_create(*, username: str, role: str, password: str | None, actor=None, is_staff: bool | None = None) -> User:
    """Creates a user with ``role``; ``password`` is validated with Django's validators (None: unusable)."""
    username = (username or "").strip()
    errors: dict[str, list[str]] = {}
    if role not in Role.values:
        errors["role"] = [f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."]
    user = User(username=username, role=role)
    try:
        User._meta.get_field("username").run_validators(username)
        if not username:
            raise ValidationError("A username is required.")
    except ValidationError as exc:
        errors["username"] = exc.messages
    if not errors.get("username") and User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"A user named {username!r} already exists.")
    if password is not None:
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            errors["password"] = exc.messages
    if errors:
        raise ValidationFailed("The user cannot be created.", details=errors)
    # People may use the admin (their role's group decides what they see there); agents never.
    user.is_staff = role != Role.AGENT if is_staff is None else is_staff
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save()
    audit_services.audit_log(
        actor=actor,
        action="user.created",
        resource_type="user",
        resource_id=user.pk,
        details={"username": user.username, "role": user.role},
    )
    return user


def agent_create(*, username: str, key_name: str = "", actor=None) -> tuple[User, ApiKey, str]:
    """Creates an agent identity (no password, no admin access) and its first API key."""
    with transaction.atomic():
        user = user_create(username=username, role=Role.AGENT, password=None, actor=actor, is_staff=False)
        api_key, raw_key = api_key_create(user=user, name=key_name or "created with the agent", actor=actor)
    return user, api_key, raw_key


# --- what a request needs to know about its user (JWT) -----------------------------------------


def user_snapshot_cache_key(user_id) -> str:
    return f"accounts:user-snapshot:{user_id}"


def user_snapshot_of(user: User | None) -> dict:
    """What authenticating a request as ``user`` needs, with no query; {} for no usable user."""
    if user is None:
        return {}
    return {
        "user_id": user.pk,
        "username": user.username,
        "role": user.role,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "token_version": user.token_version,
        "permissions": sorted(user.get_all_permissions()) if user.is_active else [],
    }


def user_snapshot_load(*, user_id) -> dict:
    """Reads the snapshot from the database and caches it (``add``: a concurrent refresh wins)."""
    snapshot = user_snapshot_of(User.objects.filter(pk=user_id).first())
    cache_add(user_snapshot_cache_key(user_id), snapshot, settings.JWT_USER_CACHE_SECONDS)
    return snapshot


def user_snapshot_refresh(*, user_id) -> None:
    """The user changed (token version, status, role, groups): every process sees it on its next request.

    Deleted now, and rewritten from the database after commit with ``set``: a request that read the
    old row before the commit and caches it with ``add`` afterwards finds the key taken and cannot
    bring a stale version back. Each time, every process's memo of it is dropped (published on
    the memo channel, ``accounts.cache.MemoInvalidations``).
    """
    key = user_snapshot_cache_key(user_id)
    cache_delete(key)
    # Every process's memory of it, now and again after the rewrite (a process that re-read the
    # old row before the commit remembered the old snapshot).
    memo_invalidations.publish(f"u:{user_id}")

    def rewrite() -> None:
        snapshot = user_snapshot_of(User.objects.filter(pk=user_id).first())
        cache_set(key, snapshot, settings.JWT_USER_CACHE_SECONDS)
        memo_invalidations.publish(f"u:{user_id}")  # after the set: a process that re-reads gets this one

    transaction.on_commit(rewrite)


# --- API keys ---------------------------------------------------------------------------------


def api_key_digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def api_key_parse(raw_key: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    if not raw_key.startswith(API_KEY_TAG) or len(raw_key) > 128:
        return None
    prefix, dot, secret = raw_key[len(API_KEY_TAG) :].partition(".")
    if not dot or not prefix or not secret:
        return None
    return prefix


def api_key_matches(raw_key: str, key_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored digest."""
    return hmac.compare_digest(api_key_digest(raw_key), key_hash)


def api_key_cache_key(prefix: str) -> str:
    return f"accounts:apikey:{prefix}"


def api_key_create(
    *, user: User, name: str = "", expires_at: datetime | None = None, actor=None, request=None
) -> tuple[ApiKey, str]:
    """Issues a key for ``user``; returns the row and the key, which is never stored or shown again."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("The expiry must be in the future.", details={"expires_at": ["In the past."]})
    if not user.is_active:
        raise ValidationFailed("Keys can only be issued to active users.", details={"user": ["Inactive."]})
    prefix = secrets.token_urlsafe(_PREFIX_BYTES)
    raw_key = f"{API_KEY_TAG}{prefix}.{secrets.token_urlsafe(_SECRET_BYTES)}"
    api_key = ApiKey.objects.create(
        user=user, name=name, prefix=prefix, key_hash=api_key_digest(raw_key), expires_at=expires_at
    )
    audit_services.audit_log(
        actor=actor,
        action="api_key.created",
        resource_type="api_key",
        resource_id=api_key.pk,
        details={"prefix": prefix, "user": user.username, "expires_at": expires_at.isoformat() if expires_at else None},
        request=request,
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey, actor=None, request=None) -> ApiKey:
    """Revokes ``api_key`` at once in every process (its cached verification is dropped)."""
    if api_key.revoked_at is not None:
        return api_key
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    # Dropped now, and a tombstone after commit: a request that verified the key from the
    # not-yet-committed row caches it with ``add`` (accounts.authentication), which the tombstone
    # refuses, or before it, and the tombstone's ``set`` overwrites it. Not before commit: a
    # rollback would leave a live key refused.
    _forget(api_key.prefix)
    transaction.on_commit(lambda: _tombstone(api_key.prefix))
    audit_services.audit_log(
        actor=actor,
        action="api_key.revoked",
        resource_type="api_key",
        resource_id=api_key.pk,
        details={"prefix": api_key.prefix, "user_id": api_key.user_id},
        request=request,
    )
    return api_key


def api_keys_forget_cached(*, user_id: int) -> None:
    """Drops the cached verification of every key of a user (role, permissions or status changed)."""
    prefixes = list(ApiKey.objects.filter(user_id=user_id).values_list("prefix", flat=True))
    if prefixes:
        _forget(*prefixes)
        transaction.on_commit(lambda: _forget(*prefixes))


# How long a revoked key's tombstone stays in the shared cache: longer than any request that read
# the key before the revocation committed can take to cache what it read.
_TOMBSTONE_SECONDS = 3600


def _tombstone(*prefixes: str) -> None:
    """Marks the keys with ``prefixes`` unusable in the shared cache (``{}``), and drops this process's copy."""
    for prefix in prefixes:
        cache_set(api_key_cache_key(prefix), {}, _TOMBSTONE_SECONDS)
    memo_invalidations.publish(*(f"k:{prefix}" for prefix in prefixes))  # every process's copy, this one's too


def _forget(*prefixes: str) -> None:
    """Drops the cached verification of the keys with ``prefixes``: shared, and every process's copy."""
    cache_delete(*(api_key_cache_key(prefix) for prefix in prefixes))
    memo_invalidations.publish(*(f"k:{prefix}" for prefix in prefixes))  # every process's copy, this one's too
