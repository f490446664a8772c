"""Default beat schedules of the registered jobs, installed into django-celery-beat after ``migrate``.

One periodic task per job that has a schedule, named after the job (``JobSpec.schedule_name``) and
running the job's own task (``JobSpec.task_name``). Installation is idempotent and never
overwrites a schedule staff already edited in the admin: an entry is created only when no
periodic task of that name exists.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from django.db.models.signals import post_migrate
from django.dispatch import receiver

from agentplatform.scheduling.registry import JOBS, Every, JobSpec


def default_schedules() -> dict[str, JobSpec]:
    """The jobs that have a default schedule, by periodic task name."""
    return {spec.schedule_name: spec for spec in JOBS.values() if spec.schedule is not None}


def install_default_schedules() -> list[str]:
    """Create missing default periodic tasks; returns the names created."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    created: list[str] = []
    for name, spec in default_schedules().items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        fields: dict = {"name": name, "task": spec.task_name, "kwargs": json.dumps({}), "description": spec.description}
        if isinstance(spec.schedule, Every):
            fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=spec.schedule.seconds, period=IntervalSchedule.SECONDS
            )
        else:
            fields["crontab"], _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **asdict(spec.schedule))
        PeriodicTask.objects.create(**fields)
        created.append(name)
    return created


@receiver(post_migrate)
def _install_after_migrate(sender, app_config=None, **kwargs) -> None:
    # post_migrate fires once per app that has models, after all migrations ran; install once,
    # keyed on django_celery_beat (whose tables the schedules live in).
    if getattr(app_config, "label", None) != "django_celery_beat":
        return
    install_default_schedules()
