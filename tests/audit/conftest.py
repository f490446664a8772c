"""Fixtures of the audit tests: users of each role, an export directory per test, event factories."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.roles import ROLE_PERMISSIONS
from audit.models import AuditEvent
from audit.services import build_event
from audit.writer import insert_events

_counter = itertools.count()


@pytest.fixture(autouse=True)
def _audit_files(settings, tmp_path):
    """Archives, exports and the chain-head file go to a directory of this test only."""
    settings.MEDIA_ROOT = tmp_path
    settings.AUDIT_EXPORT_DIR = tmp_path / "exports"
    settings.AUDIT_WRITE_RETRY_BACKOFF_SECONDS = 0


def _grant(user, role: str) -> None:
    # The flags are given at creation (make_user below): changing them later is an audited event.
    if role == Role.ADMIN:
        return
    for dotted in ROLE_PERMISSIONS[role]:
        app_label, codename = dotted.split(".", 1)
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


@pytest.fixture
def make_user(django_user_model):
    def make(role: str = Role.ANALYST, username: str | None = None):
        user = django_user_model.objects.create_user(
            username=username or f"{role}-{next(_counter)}",
            password="x-test-password-1",
            role=role,
            is_staff=role != Role.AGENT,
            is_superuser=role == Role.ADMIN,
        )
        _grant(user, role)
        return django_user_model.objects.get(pk=user.pk)  # fresh: no stale permission cache

    return make


@pytest.fixture
def client_for(make_user):
    """An API client authenticated as a new user of ``role`` (returns client, user)."""

    def make(role: str = Role.ANALYST, username: str | None = None):
        user = make_user(role, username)
        client = APIClient()
        client.force_authenticate(user)
        return client, user

    return make


@pytest.fixture
def store_events():
    """Inserts events built from keyword dicts at once (bypassing buffers); returns them."""

    def store(*specs: dict):
        events = []
        for spec in specs:
            spec = dict(spec)
            actor = spec.pop("actor", None)
            events.append(build_event(actor=actor, **spec))
        insert_events(events)
        stored = AuditEvent.objects.in_bulk([e.event_id for e in events], field_name="event_id")
        return [stored[e.event_id] for e in events]

    return store
