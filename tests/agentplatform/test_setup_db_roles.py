"""manage.py setup_db_roles: the application's role and its least-privilege grants (PostgreSQL)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.conftest import connect_as


def privileges(role: str, table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants WHERE grantee = %s AND table_name = %s",
            [role, table],
        )
        return {row[0] for row in cursor.fetchall()}


def test_audit_tables_are_read_and_append_only_and_the_others_read_write(app_role):
    for table in ("audit_auditevent", "audit_auditcheckpoint", "audit_auditsealing", "audit_auditexport"):
        assert privileges(app_role, table) == {"SELECT", "INSERT"}
    assert privileges(app_role, "experiments_exposure") == {"SELECT", "INSERT", "UPDATE", "DELETE"}


def test_running_it_again_is_idempotent_and_takes_back_what_was_granted_by_hand(app_role):
    with connection.cursor() as cursor:
        cursor.execute(f'GRANT DELETE ON audit_auditevent TO "{app_role}"')
    call_command("setup_db_roles", "--app-role", app_role, stdout=io.StringIO())
    assert privileges(app_role, "audit_auditevent") == {"SELECT", "INSERT"}


def test_the_retention_minimum_age_is_pinned_on_the_function_where_the_caller_cannot_change_it(app_role):
    with connection.cursor() as cursor:
        cursor.execute("SELECT proconfig FROM pg_proc WHERE proname = 'audit_retention_delete'")
        assert "audit.retention_min_days=30" in cursor.fetchone()[0]


def test_the_password_is_read_from_standard_input(app_role, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass\n"))
    call_command("setup_db_roles", "--app-role", app_role, "--password-stdin", stdout=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", [app_role])
        assert cursor.fetchone()[0] is True
    with connect_as(app_role) as conn:  # trust authentication on the loopback: the login still works
        assert conn.execute("SELECT current_user").fetchone()[0] == app_role


@pytest.mark.django_db
def test_the_owner_cannot_be_the_application_role():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        owner = cursor.fetchone()[0]
    with pytest.raises(CommandError, match="must not be the owner"):
        call_command("setup_db_roles", "--app-role", owner, stdout=io.StringIO())


@pytest.mark.django_db
def test_a_role_name_that_is_not_a_plain_identifier_is_refused():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with pytest.raises(CommandError, match="identifier"):
        call_command("setup_db_roles", "--app-role", 'app"; DROP TABLE x; --', stdout=io.StringIO())


@pytest.mark.django_db
def test_readiness_says_whether_the_process_connects_as_a_least_privilege_role():
    from audit.selectors import audit_chain_status

    role = audit_chain_status()["database_role"]
    if connection.vendor != "postgresql":
        assert role is None
        return
    # The test suite connects as the owner (a superuser): it could rewrite the log.
    assert role["least_privilege"] is False
