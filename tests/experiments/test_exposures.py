"""Exposure storage: one row per (experiment, user), keeping the earliest time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from experiments.models import Exposure
from experiments.services.exposures import exposures_insert

pytestmark = pytest.mark.django_db

EARLY = datetime(2026, 1, 1, 9, tzinfo=UTC)
LATE = datetime(2026, 1, 1, 17, tzinfo=UTC)


def test_a_later_duplicate_does_not_move_first_seen(make_experiment):
    experiment = make_experiment(start=True)
    variant = experiment.variants.first()
    exposures_insert([(experiment.id, variant.id, "u1", EARLY)])
    exposures_insert([(experiment.id, variant.id, "u1", LATE)])
    assert Exposure.objects.get(user_id="u1").first_seen_at == EARLY


def test_an_earlier_duplicate_moves_first_seen_back(make_experiment):
    experiment = make_experiment(start=True)
    variant = experiment.variants.first()
    exposures_insert([(experiment.id, variant.id, "u1", LATE)])
    exposures_insert([(experiment.id, variant.id, "u1", EARLY), (experiment.id, variant.id, "u1", LATE)])
    assert Exposure.objects.filter(user_id="u1").count() == 1
    assert Exposure.objects.get(user_id="u1").first_seen_at == EARLY
