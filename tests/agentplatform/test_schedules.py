import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from agentplatform.scheduling.schedules import default_schedules, install_default_schedules


@pytest.mark.django_db
def test_migrate_installs_every_default_schedule():
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert set(default_schedules()) <= names


@pytest.mark.django_db
def test_install_keeps_staff_edits_and_creates_nothing_twice():
    task = PeriodicTask.objects.get(name="platform heartbeat")
    task.enabled = False
    task.save()
    assert install_default_schedules() == []
    call_command("migrate", verbosity=0)
    task.refresh_from_db()
    assert task.enabled is False
    assert PeriodicTask.objects.filter(name="platform heartbeat").count() == 1


@pytest.mark.django_db
def test_deleted_default_schedule_is_reinstalled():
    PeriodicTask.objects.filter(name="platform heartbeat").delete()
    assert install_default_schedules() == ["platform heartbeat"]
