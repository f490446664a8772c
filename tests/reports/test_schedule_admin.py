"""The periodic task (schedule) admin: each action checks its permission, every change is audited."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from audit.models import AuditEvent
from reports.models import JobRun

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_celery_beat_periodictask_changelist"


def _post_action(client, action: str, *names: str):
    ids = list(PeriodicTask.objects.filter(name__in=names).values_list("pk", flat=True))
    assert len(ids) == len(names)
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": ids})


def _schedule_events():
    return AuditEvent.objects.filter(action__startswith="schedule.")


@pytest.fixture
def superuser(make_user):
    user = make_user("admin", username="root")
    user.is_superuser = True
    user.save()
    return user


@pytest.mark.parametrize("action", ["disable_tasks", "toggle_tasks"])
def test_an_analyst_cannot_switch_off_audit_sealing(client, make_user, action):
    client.force_login(make_user("analyst"))
    _post_action(client, action, "audit_seal", "audit_retention")
    assert set(
        PeriodicTask.objects.filter(name__in=["audit_seal", "audit_retention"]).values_list("enabled", flat=True)
    ) == {True}
    assert not _schedule_events().exists()


def test_an_analyst_cannot_enable_a_disabled_schedule(client, make_user):
    PeriodicTask.objects.filter(name="daily_report").update(enabled=False)
    client.force_login(make_user("analyst"))
    _post_action(client, "enable_tasks", "daily_report")
    assert PeriodicTask.objects.get(name="daily_report").enabled is False


def test_an_analyst_cannot_run_a_schedule(client, make_user, settings):
    settings.CELERY_BROKER_URL = "memory://"  # no worker: an allowed run would happen in-process, here
    client.force_login(make_user("analyst"))
    _post_action(client, "run_tasks", "daily_report")
    assert not JobRun.objects.exists()
    assert not AuditEvent.objects.filter(action__in=["job.run_requested", "schedule.run"]).exists()


def test_the_analyst_changelist_offers_no_schedule_action(client, make_user):
    client.force_login(make_user("analyst"))
    page = client.get(reverse(CHANGELIST)).content.decode()
    for action in ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks"):
        assert f'value="{action}"' not in page


def test_changing_schedules_does_not_grant_running_them(client, make_user, settings):
    from django.contrib.auth.models import Permission

    settings.CELERY_BROKER_URL = "memory://"
    editor = make_user("analyst", username="editor")
    editor.user_permissions.add(Permission.objects.get(codename="change_periodictask"))
    client.force_login(type(editor).objects.get(pk=editor.pk))
    _post_action(client, "run_tasks", "daily_report")
    assert not JobRun.objects.exists()
    _post_action(client, "disable_tasks", "daily_report")
    assert PeriodicTask.objects.get(name="daily_report").enabled is False


def test_disabling_is_audited_with_the_staff_actor_and_task_name_and_logged(
    client, make_user, django_capture_on_commit_callbacks
):
    operator = make_user("operator")
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        _post_action(client, "disable_tasks", "audit_seal")
    assert PeriodicTask.objects.get(name="audit_seal").enabled is False
    event = _schedule_events().get()
    assert (event.action, event.actor_id, event.resource_type, event.resource_id) == (
        "schedule.disabled",
        operator.pk,
        "periodic_task",
        "audit_seal",
    )
    assert event.details["task"] == "jobs.audit_seal"
    assert LogEntry.objects.filter(user=operator, object_repr__contains="audit_seal").exists()


def test_enabling_and_toggling_are_audited_per_schedule(client, make_user, django_capture_on_commit_callbacks):
    PeriodicTask.objects.filter(name="daily_report").update(enabled=False)
    client.force_login(make_user("operator"))
    with django_capture_on_commit_callbacks(execute=True):
        _post_action(client, "enable_tasks", "daily_report")
        _post_action(client, "toggle_tasks", "daily_report", "audit_seal")
    actions = list(_schedule_events().order_by("id").values_list("action", "resource_id"))
    assert actions[0] == ("schedule.enabled", "daily_report")
    assert sorted(actions[1:]) == [("schedule.disabled", "audit_seal"), ("schedule.disabled", "daily_report")]
    assert not PeriodicTask.objects.filter(name__in=["daily_report", "audit_seal"], enabled=True).exists()


def test_running_a_schedule_is_audited(client, make_user, settings, django_capture_on_commit_callbacks):
    settings.CELERY_BROKER_URL = "memory://"
    operator = make_user("operator")
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        _post_action(client, "run_tasks", "daily_report")
    event = _schedule_events().get()
    assert (event.action, event.actor_id, event.resource_id) == ("schedule.run", operator.pk, "daily_report")
    assert JobRun.objects.filter(job="daily_report").exists()  # and the job ran (no worker: in-process)


def test_adding_changing_and_deleting_a_schedule_are_audited(client, superuser, django_capture_on_commit_callbacks):
    client.force_login(superuser)
    interval, _ = IntervalSchedule.objects.get_or_create(every=300, period=IntervalSchedule.SECONDS)
    form = {
        "name": "extra rollup",
        "regtask": "jobs.metrics_rollup",
        "task": "",
        "enabled": "on",
        "description": "",
        "interval": interval.pk,
        "args": "[]",
        "kwargs": "{}",
        "expire_seconds": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "priority": "",
        "headers": "{}",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:django_celery_beat_periodictask_add"), form)
        assert response.status_code == 302, response.content.decode()[:2000]
        task = PeriodicTask.objects.get(name="extra rollup")
        response = client.post(
            reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]),
            {**form, "kwargs": json.dumps({"force": True})},
        )
        assert response.status_code == 302
        response = client.post(reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk]), {"post": "yes"})
        assert response.status_code == 302
    events = list(_schedule_events().order_by("id"))
    assert [(e.action, e.resource_id, e.actor_id) for e in events] == [
        ("schedule.created", "extra rollup", superuser.pk),
        ("schedule.changed", "extra rollup", superuser.pk),
        ("schedule.deleted", "extra rollup", superuser.pk),
    ]
    assert "kwargs" in events[1].details["changed"]
    assert {e.details["task"] for e in events} == {"jobs.metrics_rollup"}
    assert not PeriodicTask.objects.filter(name="extra rollup").exists()
