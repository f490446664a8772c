"""The make-run demo seed: an agent whose stored key works, idempotently."""

from __future__ import annotations

import io

import pytest

from accounts import demo
from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def test_seed_creates_a_working_demo_agent_once(settings, tmp_path, api_client):
    settings.VAR_DIR = tmp_path
    demo.seed(stdout=io.StringIO())
    demo.seed(stdout=io.StringIO())
    raw_key = (tmp_path / "demo-agent-key").read_text()
    assert ApiKey.objects.filter(user__username=demo.DEMO_AGENT).count() == 1
    assert (tmp_path / "demo-agent-key").stat().st_mode & 0o077 == 0
    response = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert response.json()["username"] == demo.DEMO_AGENT
