"""Declared permissions: 401 for anonymous, 403 (audited once) without the permission, roles via groups."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.roles import ROLE_PERMISSIONS, role_group_name
from accounts.services import role_groups_sync

pytestmark = pytest.mark.django_db

PROBE = "/api/v1/test/probe"


@pytest.mark.urls("tests.accounts.urls")
def test_caller_without_the_permission_gets_403_envelope_audited_once(auth_client, audit_events, flush_denials):
    client = auth_client("agent")
    response = client.get(PROBE)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert flush_denials() == 1
    (event,) = audit_events.of("auth.permission_denied")
    assert event["actor"].pk == client.user.pk
    assert event["details"]["required"] == ["Requires('accounts.view_user')"]


@pytest.mark.urls("tests.accounts.urls")
def test_a_denial_is_stored_although_the_refused_requests_transaction_rolls_back(
    auth_client, monkeypatch, flush_denials
):
    from django.db import connection

    from audit.models import AuditEvent

    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    client = auth_client("agent")
    assert client.get(PROBE).status_code == 403
    flush_denials()
    assert AuditEvent.objects.filter(action="auth.permission_denied", actor_id=client.user.pk).count() == 1


@pytest.mark.urls("tests.accounts.urls")
@pytest.mark.parametrize(("role", "status"), [("agent", 403), ("analyst", 200), ("operator", 200), ("admin", 200)])
def test_probe_follows_the_role_table(auth_client, role, status):
    assert auth_client(role).get(PROBE).status_code == status


@pytest.mark.urls("tests.accounts.urls")
def test_anonymous_caller_gets_401_not_403(audit_events):
    response = APIClient().get(PROBE)
    assert response.status_code == 401
    assert not audit_events.of("auth.permission_denied")


def test_every_role_has_its_group_with_the_tabled_permissions():
    for role in Role:
        group = Group.objects.get(name=role_group_name(role))
        rows = group.permissions.values_list("content_type__app_label", "codename")
        granted = {f"{app}.{codename}" for app, codename in rows}
        if role == Role.ADMIN:
            assert len(granted) == Permission.objects.count()
        else:
            assert ROLE_PERMISSIONS[role] <= granted


def test_new_user_joins_the_group_of_its_role(user_factory):
    user = user_factory(role="operator")
    assert list(user.groups.values_list("name", flat=True)) == [role_group_name(Role.OPERATOR)]


def test_role_change_moves_the_user_and_keeps_other_groups(user_factory, audit_events):
    user = user_factory(role="analyst")
    extra = Group.objects.create(name="on-call")
    user.groups.add(extra)
    user.role = Role.OPERATOR
    user.save()
    assert set(user.groups.values_list("name", flat=True)) == {role_group_name(Role.OPERATOR), "on-call"}
    (event,) = audit_events.of("user.role_changed")
    assert event["details"]["from"] == "analyst" and event["details"]["to"] == "operator"


def test_role_change_reaches_an_agent_key_at_once(api_client, agent_key):
    assert "accounts.view_user" not in api_client.get("/api/v1/auth/me", **agent_key).json()["permissions"]
    agent_key.user.role = Role.ANALYST
    agent_key.user.save()
    assert "accounts.view_user" in api_client.get("/api/v1/auth/me", **agent_key).json()["permissions"]


def test_group_sync_is_additive_so_admin_adjustments_survive():
    group = Group.objects.get(name=role_group_name(Role.AGENT))
    extra = Permission.objects.get(codename="view_user", content_type__app_label="accounts")
    group.permissions.add(extra)
    role_groups_sync()
    assert group.permissions.filter(pk=extra.pk).exists()


def test_role_change_in_the_admin_is_audited_with_the_admin_as_actor(user_factory, audit_events):
    from django.test import Client

    admin = user_factory(role="admin")
    target = user_factory(role="analyst")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/accounts/user/{target.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(
        {
            "role": "operator",
            "groups": [g.pk for g in target.groups.all()],
            "user_permissions": [],
            "date_joined_0": target.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": target.date_joined.strftime("%H:%M:%S"),
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        }
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = client.post(f"/admin/accounts/user/{target.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    (event,) = audit_events.of("user.role_changed")
    assert event["actor"] == admin
    assert list(target.groups.values_list("name", flat=True)) == [role_group_name(Role.OPERATOR)]


def test_access_flag_changes_are_audited_with_who_made_them(user_factory, audit_events):
    admin = user_factory(role="admin")
    target = user_factory(role="analyst")
    assert not audit_events.of("user.access_changed")  # creating a user is user.created's business
    target._changed_by = admin
    target.is_superuser = True
    target.is_active = False
    target.save()
    (event,) = audit_events.of("user.access_changed")
    assert event["actor"] == admin and event["severity"] == "warning"
    assert event["details"] == {
        "username": target.username,
        "is_active": {"from": True, "to": False},
        "is_superuser": {"from": False, "to": True},
    }
    target.save()  # nothing changed: nothing recorded
    assert len(audit_events.of("user.access_changed")) == 1


def test_a_new_password_is_audited_without_its_value_and_a_login_rehash_is_not(user_factory, audit_events, settings):
    from accounts.models import User

    target = user_factory(role="analyst")
    target.set_password("a-new-secret-passphrase-9")
    target.save()
    (event,) = audit_events.of("user.password_changed")
    assert "a-new-secret-passphrase-9" not in repr(event)
    # A hasher upgrade re-hashes the same password at login: not a password change.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",  # the tests' hasher: the stored hash's
    ]
    stored = User.objects.get(pk=target.pk)
    assert stored.check_password("a-new-secret-passphrase-9")
    assert User.objects.get(pk=target.pk).password.startswith("pbkdf2_sha256$")  # it was re-hashed...
    assert len(audit_events.of("user.password_changed")) == 1  # ...and that is no password change


class _Caller:
    """A request whose user has the cached permission set the API-key snapshot gives it."""

    def __init__(self, user):
        self.user = user


def cached_user(user_factory, perms, **fields):
    user = user_factory(role="agent", **fields)
    user._perm_cache = set(perms)
    return user


def test_requires_answers_from_the_cached_permission_set(user_factory, django_assert_num_queries, monkeypatch):
    from agentplatform.permissions import Requires

    user = cached_user(user_factory, {"experiments.resolve_prompt", "audit.add_auditevent"})
    monkeypatch.setattr(type(user), "has_perms", lambda *args: pytest.fail("asked Django's backends"))
    with django_assert_num_queries(0):
        assert Requires("experiments.resolve_prompt").has_permission(_Caller(user), None)
        assert Requires("experiments.resolve_prompt", "audit.add_auditevent").has_permission(_Caller(user), None)
        assert not Requires("experiments.resolve_prompt", "experiments.change_experiment").has_permission(
            _Caller(user), None
        )


def test_requires_refuses_an_inactive_user_and_lets_a_superuser_through(user_factory):
    from agentplatform.permissions import Requires

    inactive = cached_user(user_factory, {"experiments.resolve_prompt"}, is_active=False)
    assert not Requires("experiments.resolve_prompt").has_permission(_Caller(inactive), None)
    superuser = cached_user(user_factory, set(), is_superuser=True)
    assert Requires("experiments.change_experiment").has_permission(_Caller(superuser), None)


class GrantsEverything:
    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return True


def test_with_another_backend_configured_django_is_asked(user_factory, settings):
    from agentplatform.permissions import Requires

    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "tests.accounts.test_permissions.GrantsEverything",
    ]
    user = cached_user(user_factory, set())
    assert Requires("experiments.change_experiment").has_permission(_Caller(user), None)


@pytest.mark.parametrize("is_active", [True, False])
@pytest.mark.parametrize("is_superuser", [True, False])
@pytest.mark.parametrize(
    "cached", [set(), {"experiments.resolve_prompt"}, {"experiments.resolve_prompt", "experiments.change_experiment"}]
)
@pytest.mark.parametrize(
    "required", [("experiments.resolve_prompt",), ("experiments.resolve_prompt", "experiments.change_experiment")]
)
def test_the_fast_answer_is_djangos_answer(user_factory, is_active, is_superuser, cached, required):
    from agentplatform.permissions import Requires

    user = cached_user(user_factory, cached, is_active=is_active, is_superuser=is_superuser)
    assert Requires(*required).has_permission(_Caller(user), None) == user.has_perms(required)


class _Request:
    def __init__(self, user, method):
        self.user, self.method = user, method


def test_requires_is_drfs_model_permissions_with_reads_needing_view(user_factory):
    from rest_framework.permissions import DjangoModelPermissions

    from agentplatform.permissions import Requires
    from experiments.models import Experiment

    declared = Requires(model=Experiment)
    assert isinstance(declared, DjangoModelPermissions)
    assert declared.get_required_permissions("GET", Experiment) == ["experiments.view_experiment"]
    assert declared.get_required_permissions("OPTIONS", Experiment) == ["experiments.view_experiment"]
    assert declared.get_required_permissions("DELETE", Experiment) == ["experiments.delete_experiment"]
    reader = cached_user(user_factory, {"experiments.view_experiment"})
    assert declared.has_permission(_Request(reader, "GET"), None)
    assert not declared.has_permission(_Request(reader, "PATCH"), None)
    assert not declared.has_permission(_Request(cached_user(user_factory, set()), "GET"), None)


def test_requires_takes_names_or_a_model_not_both():
    from agentplatform.permissions import Requires
    from experiments.models import Experiment

    with pytest.raises(TypeError):
        Requires("experiments.view_experiment", model=Experiment)
    assert repr(Requires(model=Experiment)) == "Requires(model=experiments.Experiment)"
