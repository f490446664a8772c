"""Fixtures for the registry tests: a fresh per-process snapshot, users per role, a prompt with versions."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

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


@pytest.fixture
def operator(user_factory):
    return user_factory(role="operator")


@pytest.fixture
def admin(user_factory):
    return user_factory(role="admin")


@pytest.fixture
def client_as():
    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def support(admin, django_capture_on_commit_callbacks):
    """Prompt ``support``: version 1 under production, version 2 under staging, version 3 the latest."""
    from prompts import services

    with django_capture_on_commit_callbacks(execute=True):
        prompt = services.prompt_create(actor=admin, key="support")
        services.prompt_version_create(
            actor=admin, prompt=prompt, content="Hello {{name}}, v1.", config={"model": "m1"}, labels=["production"]
        )
        services.prompt_version_create(
            actor=admin, prompt=prompt, content="Hi {{ name }} from {{team}}, v2.", labels=["staging"]
        )
        services.prompt_version_create(actor=admin, prompt=prompt, content="Plain v3.")
    return prompt
