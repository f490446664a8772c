from decimal import Decimal

import pytest
from django.db import IntegrityError

from experiments.metric_catalogue import METRICS
from experiments.models import Experiment, ExperimentStatus

pytestmark = pytest.mark.django_db


def test_hash_seed_defaults_to_key():
    experiment = Experiment.objects.create(
        key="tone", name="Tone", target_prompt_type="support", primary_metric="success_rate", user_percentage=50
    )
    assert experiment.hash_seed == "tone"
    assert experiment.status == ExperimentStatus.DRAFT


def test_database_refuses_percentage_above_100():
    with pytest.raises(IntegrityError):
        Experiment.objects.create(
            key="x", name="X", target_prompt_type="t", primary_metric="tokens", user_percentage=Decimal("100.5")
        )


def test_metric_catalogue_names_direction():
    assert METRICS["response_time_ms"].direction == "lower"
    assert METRICS["success_rate"].field == "success"
