"""Changes to beat schedules (django-celery-beat periodic tasks), each audited as ``schedule.*``.

A schedule decides whether the audit chain is sealed, metrics rolled up and reports written, so who
added, changed, deleted, enabled, disabled or ran one is part of the audit log: the admin calls
these services instead of writing the rows itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

RESOURCE_TYPE = "periodic_task"


def _audit(*, actor, action: str, periodic_task, request, details: dict | None = None) -> None:
    from audit.services import audit_log

    audit_log(
        actor=actor,
        action=action,
        resource_type=RESOURCE_TYPE,
        resource_id=periodic_task.name,
        details={"task": periodic_task.task, "enabled": periodic_task.enabled, **(details or {})},
        request=request,
    )


def schedule_save(*, actor, periodic_task, created: bool, changed_fields: Iterable[str] = (), request=None):
    """Saves a periodic task added or edited by ``actor`` (``schedule.created`` / ``schedule.changed``)."""
    with transaction.atomic():
        periodic_task.save()
        _audit(
            actor=actor,
            action="schedule.created" if created else "schedule.changed",
            periodic_task=periodic_task,
            request=request,
            details={
                "changed": sorted(changed_fields),
                "schedule": str(
                    periodic_task.interval
                    or periodic_task.crontab
                    or periodic_task.solar
                    or periodic_task.clocked
                    or ""
                ),
                "kwargs": (periodic_task.kwargs or "")[:500],
            },
        )
    return periodic_task


def schedule_delete(*, actor, periodic_task, request=None) -> None:
    """Deletes a periodic task (``schedule.deleted``)."""
    with transaction.atomic():
        _audit(actor=actor, action="schedule.deleted", periodic_task=periodic_task, request=request)
        periodic_task.delete()


def schedules_set_enabled(*, actor, periodic_tasks, enabled: bool | None, request=None) -> list:
    """Enables, disables or (``enabled=None``) toggles periodic tasks (``schedule.enabled`` / ``.disabled``).

    Returns the tasks as saved. Disabling clears ``last_run_at`` as django-celery-beat's own action
    does, so re-enabling does not fire a catch-up run at once.
    """
    from django_celery_beat.models import PeriodicTask

    changed = []
    with transaction.atomic():
        rows = PeriodicTask.objects.select_for_update().filter(pk__in=[task.pk for task in periodic_tasks])
        for periodic_task in rows.order_by("name"):
            periodic_task.enabled = (not periodic_task.enabled) if enabled is None else enabled
            fields = ["enabled"]
            if not periodic_task.enabled:
                periodic_task.last_run_at = None
                fields.append("last_run_at")
            # save() (not a queryset update) so beat's change tracking sees the edit.
            periodic_task.save(update_fields=fields)
            _audit(
                actor=actor,
                action="schedule.enabled" if periodic_task.enabled else "schedule.disabled",
                periodic_task=periodic_task,
                request=request,
            )
            changed.append(periodic_task)
    return changed


def schedule_run_requested(*, actor, periodic_task, request=None) -> None:
    """Records that ``actor`` ran a periodic task now (``schedule.run``), before it is sent."""
    _audit(actor=actor, action="schedule.run", periodic_task=periodic_task, request=request)
