from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from experiments.metric_catalogue import METRICS
from experiments.models import Experiment, ExperimentStatus, Result

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


POSTGRES = connection.vendor == "postgresql"


def _result(experiment, variant, event_id: str) -> Result:
    return Result.objects.create(
        event_id=event_id, experiment=experiment, variant=variant, user_id="u-1", occurred_at=timezone.now()
    )


@pytest.mark.skipif(not POSTGRES, reason="the (experiment, variant) check is PostgreSQL's trigger (migration 0008)")
def test_database_refuses_a_result_whose_variant_belongs_to_another_experiment(make_experiment):
    first = make_experiment(key="first")
    second = make_experiment(key="second")
    _result(first, first.variants.get(key="warm"), "e-ok")
    connection.check_constraints()
    with pytest.raises(IntegrityError), transaction.atomic():
        _result(first, second.variants.get(key="warm"), "e-crossed")
        connection.check_constraints()
    with pytest.raises(IntegrityError), transaction.atomic():
        Result.objects.filter(event_id="e-ok").update(variant_id=10**9)  # no such variant
        connection.check_constraints()


@pytest.mark.skipif(not POSTGRES, reason="the (experiment, variant) check is PostgreSQL's trigger (migration 0008)")
def test_a_copied_batch_naming_another_experiments_variant_is_refused_whole(make_experiment):
    from agentplatform.ingest import ingest_rows
    from experiments.services.results import COLUMNS

    first = make_experiment(key="first")
    second = make_experiment(key="second")
    now = timezone.now()

    def row(event_id, variant):
        return (event_id, first.id, variant.id, "u-1", now, True, None, None, None, None, "")

    good = [row(f"e-{i}", first.variants.get(key="control")) for i in range(5)]
    with pytest.raises(IntegrityError), transaction.atomic():
        ingest_rows(
            table="experiments_result",
            columns=COLUMNS,
            rows=[*good, row("e-crossed", second.variants.get(key="warm"))],
            conflict_key=("event_id",),
        )
    assert not Result.objects.exists()  # all or nothing
    stored = ingest_rows(table="experiments_result", columns=COLUMNS, rows=good, conflict_key=("event_id",))
    assert len(stored) == 5


def test_database_refuses_to_delete_a_variant_with_results(make_experiment):
    experiment = make_experiment(key="ran")
    warm = experiment.variants.get(key="warm")
    _result(experiment, warm, "e-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        warm.delete()
    assert experiment.variants.filter(key="warm").exists()
    Result.objects.all().delete()
    warm.delete()  # no results left: the guard lets it go
    assert not experiment.variants.filter(key="warm").exists()


def test_deleting_an_experiment_deletes_its_variants_results(make_experiment):
    experiment = make_experiment(key="gone")
    kept = make_experiment(key="kept")
    for variant in experiment.variants.all():
        _result(experiment, variant, f"e-{variant.key}")
    _result(kept, kept.variants.get(key="control"), "e-kept")
    experiment.delete()
    connection.check_constraints()
    assert list(Result.objects.values_list("event_id", flat=True)) == ["e-kept"]
