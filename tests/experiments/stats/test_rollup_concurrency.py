"""Two rollups racing on one experiment count every result once (the state row is locked)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections

from experiments.stats.models import ExperimentVariantMetric
from experiments.stats.rollup import experiment_stats_catch_up

from . import datasets
from .conftest import DAY0, load_dataset


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL (SQLite has one writer)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_catch_ups_roll_each_result_once():
    data = datasets.clear_win()
    experiment = load_dataset(data)
    now = DAY0 + timedelta(days=2)
    rolled: list[int] = []
    barrier = threading.Barrier(2)

    def roll() -> None:
        try:
            barrier.wait()
            rolled.append(experiment_stats_catch_up(experiment=experiment, now=now))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=roll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(rolled) == [0, len(data.calls)]
    calls = ExperimentVariantMetric.objects.filter(experiment=experiment, metric="_calls")
    assert sum(row.total for row in calls) == len(data.calls)
