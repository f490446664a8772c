"""Fixtures for the experiments tests: users per role, a valid body, experiment factories."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.models import Role
from experiments.services.exposures import exposures_forget_seen
from experiments.snapshot import snapshot_reset


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts with no cached snapshot and no remembered exposures in this process."""
    snapshot_reset()
    exposures_forget_seen()
    yield
    snapshot_reset()
    exposures_forget_seen()


def make_user(role: str, username: str | None = None):
    """A user of ``role`` with exactly that role's permissions (its role group, per ``accounts.roles``)."""
    user = get_user_model().objects.create_user(
        username=username or f"{role}-user", password="x-password-123", role=role, is_staff=role != Role.AGENT
    )
    if role == Role.ADMIN:
        user.is_superuser = True
        user.save(update_fields=["is_superuser"])
    return get_user_model().objects.get(pk=user.pk)  # a fresh instance: no stale permission cache


def strip_permission(user, codename: str):
    """``user`` with its role's permissions less one (moved from the group to the user, minus that one)."""
    permissions = [p for p in Permission.objects.filter(group__user=user) if p.codename != codename]
    user.groups.clear()
    user.user_permissions.set(permissions)
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def operator(db):
    return make_user(Role.OPERATOR)


@pytest.fixture
def analyst(db):
    return make_user(Role.ANALYST)


@pytest.fixture
def agent(db):
    return make_user(Role.AGENT)


@pytest.fixture
def admin_user(db):
    return make_user(Role.ADMIN, "root-admin")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def operator_client(operator):
    return client_for(operator)


@pytest.fixture
def agent_client(agent):
    return client_for(agent)


@pytest.fixture
def analyst_client(analyst):
    return client_for(analyst)


def experiment_body(**overrides) -> dict:
    body = {
        "key": "greeting-tone",
        "name": "Greeting tone",
        "hypothesis": "A warmer greeting raises success.",
        "target_prompt_type": "support",
        "primary_metric": "success_rate",
        "guardrail_metrics": ["response_time_ms"],
        "user_percentage": 50,
        "variants": [
            {"key": "control", "name": "Control", "content": "You are helpful.", "weight": 1, "is_control": True},
            {"key": "warm", "name": "Warm", "content": "You are warm and helpful.", "weight": 1, "is_control": False},
        ],
    }
    body.update(overrides)
    return body


@pytest.fixture
def make_experiment(db, operator):
    """Create (and optionally start) an experiment through the services."""
    from django.test import TestCase

    from experiments.services import lifecycle

    def make(*, start: bool = False, **overrides):
        experiment = lifecycle.experiment_create(actor=operator, data=experiment_body(**overrides))
        if start:
            with TestCase.captureOnCommitCallbacks(execute=True):
                experiment = lifecycle.experiment_start(actor=operator, experiment=experiment)
        return experiment

    return make


@pytest.fixture
def audit_calls(monkeypatch):
    """Every ``audit_log`` call the experiments services and admin make, as keyword dicts."""
    calls: list[dict] = []

    def record(**kwargs):
        calls.append(kwargs)

    monkeypatch.setattr("experiments.services.lifecycle.audit_log", record)
    monkeypatch.setattr("experiments.admin.audit_log", record)
    return calls
