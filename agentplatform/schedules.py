"""Default beat schedules, installed into django-celery-beat after every ``migrate``.

Installation is idempotent and never overwrites a schedule staff already edited in the admin: an
entry is created only when no periodic task of that name exists. Apps add theirs by calling
``register_schedule`` at import time (from their ``apps.py`` ``ready``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db.models.signals import post_migrate
from django.dispatch import receiver


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    every_seconds: int | None = None
    crontab: dict[str, str] = field(default_factory=dict)  # minute, hour, day_of_week, day_of_month, month_of_year
    kwargs: dict = field(default_factory=dict)
    description: str = ""


DEFAULT_SCHEDULES: dict[str, Schedule] = {}


def register_schedule(schedule: Schedule) -> None:
    DEFAULT_SCHEDULES[schedule.name] = schedule


register_schedule(
    Schedule(
        name="platform heartbeat",
        task="platform.heartbeat",
        every_seconds=60,
        description="Proves beat and a worker run: /readyz shows the last heartbeat.",
    )
)


def install_default_schedules() -> list[str]:
    """Create missing default periodic tasks; returns the names created."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    created: list[str] = []
    for schedule in DEFAULT_SCHEDULES.values():
        if PeriodicTask.objects.filter(name=schedule.name).exists():
            continue
        fields: dict = {
            "name": schedule.name,
            "task": schedule.task,
            "kwargs": json.dumps(schedule.kwargs),
            "description": schedule.description,
        }
        if schedule.every_seconds:
            fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=schedule.every_seconds, period=IntervalSchedule.SECONDS
            )
        else:
            cron = {"minute": "0", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
            cron.update(schedule.crontab)
            fields["crontab"], _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **cron)
        PeriodicTask.objects.create(**fields)
        created.append(schedule.name)
    return created


@receiver(post_migrate)
def _install_after_migrate(sender, app_config=None, **kwargs) -> None:
    # post_migrate fires once per app that has models, after all migrations ran; install once,
    # keyed on django_celery_beat (whose tables the schedules live in).
    if getattr(app_config, "label", None) != "django_celery_beat":
        return
    install_default_schedules()
