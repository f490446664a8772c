"""Every change made through the admin reaches the audit log, whichever app's admin made it.

The admin records its additions, changes and deletions as ``LogEntry`` rows (its "history"); each
new one is copied here as ``admin.object_added``, ``admin.object_changed`` or
``admin.object_deleted``, with the staff member as actor, ``<app_label>.<model>`` and the primary
key as the resource, and the admin's own description of the change (which fields, which inlines;
never their values). One receiver covers the project's admins and the third-party ones alike
(groups, Celery beat schedules, token blacklist).

The admin writes one ``LogEntry`` with ``save()`` (a signal) but several with ``bulk_create`` (no
signal): the "delete selected" action on many rows. The site-wide action is therefore replaced by
a wrapper that audits, after a confirmed deletion, the deleted objects no ``LogEntry`` signal
reported. The domain events some admins also write (``experiment.updated``,
``datasource.collection_requested``) say what the change means; these say that it was made.

The events are ordinary (not durable): an admin change runs in a transaction, and a change rolled
back did not happen.
"""

from __future__ import annotations

import contextvars
import json

from django.contrib import admin
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType

ACTIONS = {ADDITION: "admin.object_added", CHANGE: "admin.object_changed", DELETION: "admin.object_deleted"}

# (content type id, object id) of the deletions audited in this context, for the wrapper below.
_audited_deletions: contextvars.ContextVar[set[tuple[int, str]] | None] = contextvars.ContextVar(
    "audited_admin_deletions", default=None
)


def _changes(message: str):
    """The admin's change message: its JSON list as data, an older free-text message as is."""
    if not message:
        return []
    try:
        return json.loads(message)
    except ValueError:
        return message


def _audit(*, user, content_type: ContentType, object_id: str, object_repr: str, flag: int, message: str) -> None:
    from audit.services import audit_log

    audit_log(
        actor=user,
        action=ACTIONS[flag],
        resource_type=f"{content_type.app_label}.{content_type.model}"[:64],
        resource_id=str(object_id)[:128],
        details={"object": object_repr[:200], "changes": _changes(message)},
    )


def log_entry_saved(sender, instance: LogEntry, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw or instance.action_flag not in ACTIONS:
        return
    _audit(
        user=instance.user,
        content_type=ContentType.objects.get_for_id(instance.content_type_id),
        object_id=instance.object_id,
        object_repr=instance.object_repr,
        flag=instance.action_flag,
        message=instance.change_message,
    )
    if instance.action_flag == DELETION:
        audited = _audited_deletions.get()
        if audited is not None:
            audited.add((instance.content_type_id, str(instance.object_id)))


def audited_delete_selected(modeladmin, request, queryset):
    """Django's "delete selected" action, plus the deletions its bulk-created history left unaudited."""
    content_type = ContentType.objects.get_for_model(queryset.model, for_concrete_model=False)
    selected = [(str(obj.pk), str(obj)) for obj in queryset] if request.POST.get("post") else []
    audited: set[tuple[int, str]] = set()
    token = _audited_deletions.set(audited)
    try:
        response = django_delete_selected(modeladmin, request, queryset)
    finally:
        _audited_deletions.reset(token)
    # None: the confirmed deletion happened (otherwise the confirmation page is returned).
    if response is None:
        for object_id, object_repr in selected:
            if (content_type.pk, object_id) not in audited:
                _audit(
                    user=request.user,
                    content_type=content_type,
                    object_id=object_id,
                    object_repr=object_repr,
                    flag=DELETION,
                    message="",
                )
    return response


audited_delete_selected.allowed_permissions = django_delete_selected.allowed_permissions
audited_delete_selected.short_description = django_delete_selected.short_description


def connect() -> None:
    """Called from ``AuditConfig.ready``."""
    from django.db.models.signals import post_save

    post_save.connect(log_entry_saved, sender=LogEntry, dispatch_uid="audit.admin_trail.log_entry")
    admin.site.add_action(audited_delete_selected, "delete_selected")
