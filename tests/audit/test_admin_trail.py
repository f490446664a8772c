"""Every change made through the admin is audited, in the project's admins and third-party ones alike."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django_celery_beat.models import IntervalSchedule

from accounts.models import Role
from audit.models import AuditEvent

# Real commits: the admin's views run in transactions, and their events are written on commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(client, make_user):
    """A superuser's client."""
    user = make_user(Role.ADMIN)  # a superuser
    client.force_login(user)
    return client, user


def trail(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_adding_and_changing_through_the_admin_is_audited_with_the_fields_not_their_values(staff):
    client, user = staff
    response = client.post("/admin/auth/group/add/", {"name": "reviewers", "permissions": []})
    assert response.status_code == 302
    group = Group.objects.get(name="reviewers")
    (added,) = trail("admin.object_added")
    assert (added.actor_id, added.resource_type, added.resource_id) == (user.pk, "auth.group", str(group.pk))
    assert added.details == {"object": "reviewers", "changes": [{"added": {}}]}

    response = client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "auditors", "permissions": []})
    assert response.status_code == 302
    (changed,) = trail("admin.object_changed")
    assert changed.details == {"object": "auditors", "changes": [{"changed": {"fields": ["Name"]}}]}


def test_deleting_one_object_is_audited_once(staff):
    client, user = staff
    group = Group.objects.create(name="short-lived")
    response = client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    (deleted,) = trail("admin.object_deleted")
    assert (deleted.actor_id, deleted.resource_id, deleted.details["object"]) == (user.pk, str(group.pk), "short-lived")


@pytest.mark.parametrize("count", [1, 3])
def test_delete_selected_audits_each_deleted_object_once(staff, count):
    """Django writes the history of several deletions with bulk_create, which sends no signal."""
    client, user = staff
    schedules = [IntervalSchedule.objects.create(every=10 + i, period="seconds") for i in range(count)]
    changelist = "/admin/django_celery_beat/intervalschedule/"
    selected = [str(s.pk) for s in schedules]
    confirm = client.post(changelist, {"action": "delete_selected", "_selected_action": selected})
    assert confirm.status_code == 200  # the confirmation page: nothing deleted, nothing audited yet
    assert not trail("admin.object_deleted")
    response = client.post(changelist, {"action": "delete_selected", "_selected_action": selected, "post": "yes"})
    assert response.status_code == 302
    assert not IntervalSchedule.objects.filter(pk__in=selected).exists()
    deleted = trail("admin.object_deleted")
    assert sorted(e.resource_id for e in deleted) == sorted(selected)
    assert {(e.actor_id, e.resource_type) for e in deleted} == {(user.pk, "django_celery_beat.intervalschedule")}


def test_a_change_the_admin_rolls_back_leaves_no_trail(staff, monkeypatch):
    from django.contrib.auth.admin import GroupAdmin

    client, _ = staff
    group = Group.objects.create(name="stays")

    def fail(self, request, form, formsets, change):
        raise RuntimeError("after the history was written")

    monkeypatch.setattr(GroupAdmin, "save_related", fail)
    client.raise_request_exception = False
    response = client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "renamed", "permissions": []})
    assert response.status_code == 500
    assert Group.objects.get(pk=group.pk).name == "stays"
    assert not trail("admin.object_changed")


def test_every_admin_offers_the_audited_delete_selected(rf, make_user):
    """One receiver on the admin's history covers every admin; the bulk action is the one piece an
    admin could swap out, so check that none does."""
    from django.contrib import admin

    from audit import admin_trail

    request = rf.get("/admin/")
    request.user = make_user(Role.ADMIN)
    offered = 0
    for model_admin in admin.site._registry.values():
        actions = model_admin.get_actions(request)
        if "delete_selected" in actions:
            assert actions["delete_selected"][0] is admin_trail.audited_delete_selected, model_admin
            offered += 1
    assert offered > 5
