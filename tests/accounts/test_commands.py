"""create_user and create_agent: the happy paths and every bad input."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, User
from accounts.roles import role_group_name

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "plenty-long-and-uncommon-91"


def create_user(monkeypatch, *args: str, stdin: str = GOOD_PASSWORD + "\n") -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command("create_user", *args, stdout=out)
    return out.getvalue()


def test_create_user_reads_the_password_from_stdin(monkeypatch):
    output = create_user(monkeypatch, "ada", "--role", "operator", "--password-stdin")
    user = User.objects.get(username="ada")
    assert "Created operator ada" in output
    assert user.check_password(GOOD_PASSWORD) and user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == [role_group_name("operator")]
    assert GOOD_PASSWORD not in output


def test_create_user_refuses_a_weak_password_with_the_validators_reasons(monkeypatch):
    with pytest.raises(CommandError, match="too short"):
        create_user(monkeypatch, "bob", "--role", "analyst", "--password-stdin", stdin="abc\n")
    assert not User.objects.filter(username="bob").exists()


def test_create_user_refuses_an_unknown_role(monkeypatch):
    with pytest.raises(CommandError, match="invalid choice"):
        create_user(monkeypatch, "eve", "--role", "root", "--password-stdin")


def test_create_user_refuses_a_duplicate_username(monkeypatch):
    create_user(monkeypatch, "ada", "--role", "analyst", "--password-stdin")
    with pytest.raises(CommandError, match="already exists"):
        create_user(monkeypatch, "ADA", "--role", "analyst", "--password-stdin")


def test_create_user_refuses_an_invalid_username(monkeypatch):
    with pytest.raises(CommandError, match="username"):
        create_user(monkeypatch, "no spaces allowed", "--role", "analyst", "--password-stdin")


def test_create_user_requires_password_stdin(monkeypatch):
    with pytest.raises(CommandError, match="--password-stdin"):
        create_user(monkeypatch, "ada", "--role", "analyst")


def test_create_user_refuses_an_empty_stdin(monkeypatch):
    with pytest.raises(CommandError, match="No password"):
        create_user(monkeypatch, "ada", "--role", "analyst", "--password-stdin", stdin="")


def test_create_user_sends_agents_to_create_agent(monkeypatch):
    with pytest.raises(CommandError, match="create_agent"):
        create_user(monkeypatch, "bot", "--role", "agent", "--password-stdin")


def test_create_agent_prints_a_working_key_as_the_last_line(api_client):
    out = io.StringIO()
    call_command("create_agent", "bench-agent", stdout=out)
    raw_key = out.getvalue().strip().splitlines()[-1]
    agent = User.objects.get(username="bench-agent")
    assert agent.role == "agent" and not agent.is_staff and not agent.has_usable_password()
    assert ApiKey.objects.get(user=agent).prefix in raw_key
    response = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert response.json()["username"] == "bench-agent"


def test_create_agent_refuses_a_duplicate_name_and_creates_no_key():
    call_command("create_agent", "bot", stdout=io.StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_agent", "bot", stdout=io.StringIO())
    assert ApiKey.objects.count() == 1


def test_create_agent_refuses_an_invalid_name():
    with pytest.raises(CommandError, match="username"):
        call_command("create_agent", "bad name!", stdout=io.StringIO())
    assert not ApiKey.objects.exists()
