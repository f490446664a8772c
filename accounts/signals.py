"""Receivers that keep derived state in step with users: role groups, cached keys, the audit log."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from accounts.models import User
from accounts.services import api_keys_forget_cached, role_groups_sync, user_role_group_sync, user_snapshot_refresh
from agentplatform import compat
from audit import services as audit_services


def sync_role_groups_after_migrate(sender, **kwargs) -> None:
    """Connected (in AppConfig.ready) for the last app, so every app's permissions exist by then."""
    role_groups_sync()


@receiver(post_save, sender=User, dispatch_uid="accounts.user_saved")
def user_saved(sender, instance: User, created: bool, raw: bool = False, **kwargs) -> None:
    if raw:  # loaddata: fixtures carry their own groups
        return
    previous_role = instance.loaded_role  # still the stored value: save() updates it after post_save
    if created or previous_role != instance.role:
        user_role_group_sync(user=instance)
    if not created and previous_role != instance.role:
        audit_services.audit_log(
            actor=getattr(instance, "_changed_by", None),
            action="user.role_changed",
            resource_type="user",
            resource_id=instance.pk,
            details={"username": instance.username, "from": previous_role, "to": instance.role},
        )
    if not created:
        actor = getattr(instance, "_changed_by", None)
        if changes := instance.access_changes():
            audit_services.audit_log(
                actor=actor,
                action="user.access_changed",
                resource_type="user",
                resource_id=instance.pk,
                severity="warning" if any(c["to"] for f, c in changes.items() if f != "is_active") else "info",
                details={"username": instance.username, **changes},
            )
        # set_password() keeps the new raw password until the save has finished (Django passes it to
        # the password validators then): set means this save stored a new password. The raw value
        # is never logged; a re-hash of the same password at login (check_password) clears it first.
        if compat.password_set_unsaved(instance):
            audit_services.audit_log(
                actor=actor,
                action="user.password_changed",
                resource_type="user",
                resource_id=instance.pk,
                details={"username": instance.username},
            )
        # Role, permissions, token version or active status may have changed: cached checks of its
        # keys and of its tokens must not outlive it.
        api_keys_forget_cached(user_id=instance.pk)
        user_snapshot_refresh(user_id=instance.pk)


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="accounts.user_groups_changed")
@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="accounts.user_permissions_changed")
def user_grants_changed(sender, instance, action: str, reverse: bool, pk_set=None, **kwargs) -> None:
    """A user's groups or own permissions changed: its tokens' cached permission set is refreshed."""
    if not action.startswith("post_"):
        return
    if not reverse:
        user_ids = [instance.pk]
    elif action == "post_clear":
        user_ids = []  # a group or permission emptied of users: bounded by JWT_USER_CACHE_SECONDS
    else:
        user_ids = list(pk_set or ())
    for user_id in user_ids:
        user_snapshot_refresh(user_id=user_id)


@receiver(user_logged_in, dispatch_uid="accounts.user_logged_in")
def audit_login(sender, request, user, **kwargs) -> None:
    """Session logins (the admin); the token endpoint audits its own successes.

    A login without a request path is programmatic (the test client's ``force_login``, a script
    calling ``login()``), not someone signing in, and is not recorded.
    """
    if not getattr(request, "path", ""):
        return
    audit_services.audit_log(
        actor=user,
        action="auth.logged_in",
        resource_type="user",
        resource_id=user.pk,
        details={"via": "session"},
        request=request,
        durable=True,
    )


@receiver(user_login_failed, dispatch_uid="accounts.user_login_failed")
def audit_login_failure(sender, credentials: dict, request=None, **kwargs) -> None:
    """Every failed password check, from the admin login and the token endpoint alike."""
    if getattr(request, "login_refusal", None) is not None:
        return  # refused by the rate limit before any check: a flood of them must not flood the log
    username = str(credentials.get("username", ""))[:150]
    audit_services.audit_log(
        actor=None,
        actor_label=username or "anonymous",
        action="auth.login_failed",
        resource_type="user",
        resource_id=username,
        severity="warning",
        success=False,
        details={"username": username, "path": getattr(request, "path", "")},
        request=request,
        durable=True,
    )
