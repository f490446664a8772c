"""Fixtures for the statistics tests: experiments loaded with the fixed data sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from experiments.models import Experiment, ExperimentStatus, Exposure, Result, Variant

from . import datasets

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
_event_ids = count()


def load_dataset(
    data: datasets.DataSet, *, key: str | None = None, recorded_at: datetime | None = None, sequential: bool = False
) -> Experiment:
    """Creates a running experiment holding ``data``'s calls as results and its users as exposures."""
    experiment = Experiment.objects.create(
        key=key or data.name.replace("_", "-"),
        name=data.name,
        target_prompt_type="support",
        primary_metric=data.primary_metric,
        guardrail_metrics=data.guardrail_metrics,
        user_percentage=100,
        sequential=sequential,
        target_mde=data.target_mde,
        status=ExperimentStatus.RUNNING,
        started_at=DAY0,
    )
    variants = {
        variant_key: Variant.objects.create(
            experiment=experiment,
            key=variant_key,
            name=variant_key,
            content=f"prompt {variant_key}",
            weight=weight,
            is_control=variant_key == data.control,
            position=position,
        )
        for position, (variant_key, weight) in enumerate(data.weights.items())
    }
    add_results(experiment, variants, data.calls, recorded_at=recorded_at)
    users = {(c["variant"], c["user_id"]) for c in data.calls}
    Exposure.objects.bulk_create(
        Exposure(experiment=experiment, variant=variants[v], user_id=u, first_seen_at=DAY0) for v, u in sorted(users)
    )
    return experiment


def add_results(experiment, variants, calls, *, recorded_at: datetime | None = None) -> None:
    recorded_at = recorded_at or DAY0 + timedelta(days=1)
    Result.objects.bulk_create(
        (
            Result(
                event_id=f"ev-{next(_event_ids)}",
                experiment=experiment,
                variant=variants[call["variant"]],
                user_id=call["user_id"],
                occurred_at=DAY0 + timedelta(days=call["day"], hours=call.get("hour", 10)),
                success=call["success"],
                response_time_ms=call["response_time_ms"],
                tokens=call["tokens"],
                quality_score=call["quality_score"],
                user_feedback=call["user_feedback"],
                recorded_at=recorded_at,
            )
            for call in calls
        ),
        batch_size=2000,
    )


@pytest.fixture
def loaded():
    return load_dataset
