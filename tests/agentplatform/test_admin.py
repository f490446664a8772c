import datetime as dt

import pytest

from agentplatform.models import BreakerTransition


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root-admin", "root@example.com", "a-long-password-1")


@pytest.mark.django_db
def test_breaker_transitions_are_listed_read_only_in_the_admin(client, superuser):
    BreakerTransition.objects.create(
        breaker="search",
        from_state="closed",
        to_state="open",
        at=dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC),
        last_error="ConnectError: refused",
        storage="shared",
    )
    client.force_login(superuser)
    listing = client.get("/admin/agentplatform/breakertransition/")
    assert listing.status_code == 200
    assert "ConnectError: refused" in listing.content.decode()
    assert client.get("/admin/agentplatform/breakertransition/add/").status_code == 403


# --- the shared ReadOnlyModelAdmin and CSV export action ------------------------------------------


def _transition(breaker: str, minute: int) -> BreakerTransition:
    return BreakerTransition.objects.create(
        breaker=breaker,
        from_state="closed",
        to_state="open",
        at=dt.datetime(2026, 3, 2, 12, minute, tzinfo=dt.UTC),
        last_error="",
        storage="shared",
    )


def _admin(**attributes):
    from django.contrib import admin

    from agentplatform.admin import CsvExportMixin, ReadOnlyModelAdmin

    model_admin = type("TransitionAdmin", (CsvExportMixin, ReadOnlyModelAdmin), attributes)
    return model_admin(BreakerTransition, admin.site)


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("deletable_by", "superuser_may", "permitted_staff_may"),
    [("nobody", False, False), ("superusers", True, False), ("permission", True, True)],
)
def test_read_only_admins_refuse_add_and_change_and_delete_as_declared(
    deletable_by, superuser_may, permitted_staff_may, superuser, django_user_model
):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="a-long-password-1", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__endswith="_breakertransition"))
    staff = django_user_model.objects.get(pk=staff.pk)
    model_admin = _admin(deletable_by=deletable_by)
    for user, may_delete in [(superuser, superuser_may), (staff, permitted_staff_may)]:
        request = _request(user)
        assert model_admin.has_add_permission(request) is False
        assert model_admin.has_change_permission(request) is False
        assert model_admin.has_delete_permission(request) is may_delete


@pytest.mark.django_db
def test_the_export_action_streams_the_selected_rows_in_order_with_formulas_neutralised(superuser):
    exported = []
    model_admin = _admin(
        csv_columns=("breaker", "at"),
        csv_filename="transitions.csv",
        csv_ordering=("-at",),
        csv_exported=lambda self, request, queryset, *, scope: exported.append((scope, queryset.count())),
    )
    _transition("=HYPERLINK(1)", 1)
    _transition("search", 2)
    _transition("not-selected", 3)
    queryset = BreakerTransition.objects.exclude(breaker="not-selected")
    request = _request(superuser)
    assert "export_csv" in model_admin.get_actions(request)
    response = model_admin.export_csv(request, queryset)
    assert response["Content-Disposition"] == 'attachment; filename="transitions.csv"'
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines() == [
        "breaker,at",
        "search,2026-03-02T12:02:00+00:00",
        "'=HYPERLINK(1),2026-03-02T12:01:00+00:00",
    ]
    assert exported == [("selected", 2)]


@pytest.mark.django_db
def test_the_export_action_is_offered_only_to_who_may_export(superuser, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="a-long-password-1", is_staff=True)
    assert "export_csv" not in _admin(csv_columns=("breaker",)).get_actions(_request(staff))
    refusing = _admin(csv_columns=("breaker",), has_csv_export_permission=lambda self, request: False)
    assert "export_csv" not in refusing.get_actions(_request(superuser))
