"""Fixtures for the traces tests: people, an agent, live experiments made through the services."""

from __future__ import annotations

import pytest
from django.test import TestCase

from accounts.models import Role
from experiments.services import lifecycle
from experiments.snapshot import snapshot_reset
from tests.experiments.conftest import experiment_body, make_user
from traces import partitions


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """No cached experiment snapshot or remembered partitions from an earlier test."""
    snapshot_reset()
    partitions.forget()
    yield
    snapshot_reset()
    partitions.forget()


@pytest.fixture
def operator(db):
    return make_user(Role.OPERATOR)


@pytest.fixture
def agent(db):
    return make_user(Role.AGENT)


@pytest.fixture
def make_experiment(db, operator):
    """Creates an experiment through the services; ``state`` running (default), paused, completed or draft."""

    def make(*, state: str = "running", **overrides):
        experiment = lifecycle.experiment_create(actor=operator, data=experiment_body(**overrides))
        steps = {"draft": [], "running": ["start"], "paused": ["start", "pause"], "completed": ["start", "stop"]}
        for step in steps[state]:
            with TestCase.captureOnCommitCallbacks(execute=True):
                experiment = getattr(lifecycle, f"experiment_{step}")(actor=operator, experiment=experiment)
        snapshot_reset()
        return experiment

    return make
