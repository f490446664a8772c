"""Experiment statistics at the target size: 10M results from 1M users (times ``bench.scale``).

Seeds one experiment with ``generate_series`` in PostgreSQL (no Python row loop), then times:

- the stats selector reading **fresh rollups** (target ≤ 50 ms): the default read, the rollup
  plus the results recorded after its watermark (an empty slice right after a catch-up),
- the same read with a **fresh slice** of ``FRESH`` results recorded after the watermark (the lag
  plus the staleness, 90 s, of traffic at 22 results/s; each from another user: the worst case),
  half from users the rollup already holds and half from new ones (target ≤ 50 ms; the read costs
  about 6 µs per fresh user, docs/statistics.md "Benchmarks"),
- the stats selector computing **from raw results** (target ≤ 3 s),

each also divided by a plain ``SELECT variant_id, count(*), avg(...) ... GROUP BY variant_id`` over
the same table (the least any raw-data answer can cost), plus the one-off full rollup time.
The seed is kept between runs when the experiment already holds the expected number of rows.
Results and exposures are vacuumed before timing, as autovacuum does soon after a bulk insert: the
raw path reads an index-only scan, which needs the visibility map (docs/statistics.md says what a
not-yet-vacuumed tail costs).
"""

from __future__ import annotations

import statistics
import time

USERS = 1_000_000
RESULTS = 10_000_000
CHUNK = 1_000_000
FRESH = 2_000  # results after the watermark in the "fresh slice" figure


def _timed(fn, repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeat`` runs (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _seed(experiment, variants, users: int, results: int) -> None:
    from django.db import connection, transaction

    from experiments.models import Exposure, Result

    control, treatment = variants
    with connection.cursor() as cursor:
        for start in range(0, results, CHUNK):
            stop = min(results, start + CHUNK)
            with transaction.atomic():
                # Users alternate between arms; each makes results / users calls on 3 of the 14 days.
                cursor.execute(
                    f"INSERT INTO {Result._meta.db_table} (event_id, experiment_id, variant_id, user_id, "  # noqa: S608
                    "occurred_at, success, response_time_ms, tokens, quality_score, user_feedback, model, "
                    "recorded_at) SELECT 'bs-' || %s || '-' || g, %s, "
                    "CASE WHEN g %% %s %% 2 = 0 THEN %s ELSE %s END, 'u' || (g %% %s), "
                    "now() - interval '15 days' + ((g %% %s) %% 12 + (g / %s) %% 3) * interval '1 day' "
                    "+ (g %% 86400) * interval '1 second', "
                    "random() < CASE WHEN g %% %s %% 2 = 0 THEN 0.50 ELSE 0.51 END, 400 + random() * 800, "
                    "(100 + random() * 800)::int, random(), floor(random() * 3)::int - 1, 'bench', "
                    "now() - interval '1 hour' FROM generate_series(%s, %s) AS g",
                    [
                        experiment.pk,
                        experiment.pk,
                        users,
                        control.pk,
                        treatment.pk,
                        users,
                        users,
                        users,
                        users,
                        start,
                        stop - 1,
                    ],
                )
        with transaction.atomic():
            cursor.execute(
                f"INSERT INTO {Exposure._meta.db_table} (experiment_id, variant_id, user_id, first_seen_at) "  # noqa: S608
                "SELECT %s, CASE WHEN u %% 2 = 0 THEN %s ELSE %s END, 'u' || u, now() - interval '15 days' "
                "FROM generate_series(0, %s) AS u",
                [experiment.pk, control.pk, treatment.pk, users - 1],
            )


def run(bench) -> None:
    bench.setup_django()
    from django.db import connection

    from experiments.models import Experiment, ExperimentStatus, Exposure, Result, Variant
    from experiments.stats.models import ExperimentStatsState, ExperimentUserDay, ExperimentVariantMetric
    from experiments.stats.rollup import experiment_stats_catch_up
    from experiments.stats.selectors import experiment_stats

    users = max(1000, int(USERS * bench.scale))
    results = max(10_000, int(RESULTS * bench.scale))
    key = f"bench-stats-{results}"
    experiment = Experiment.objects.filter(key=key).first()
    if experiment is None or Result.objects.filter(experiment=experiment).count() != results:
        if experiment is not None:
            experiment.delete()
        experiment = Experiment.objects.create(
            key=key,
            name="Bench statistics",
            target_prompt_type="bench-stats",
            primary_metric="success_rate",
            guardrail_metrics=["response_time_ms", "tokens"],
            user_percentage=100,
            status=ExperimentStatus.RUNNING,
        )
        variants = [
            Variant.objects.create(experiment=experiment, key="control", content="a", is_control=True, position=0),
            Variant.objects.create(experiment=experiment, key="treatment", content="b", position=1),
        ]
        started = time.perf_counter()
        _seed(experiment, variants, users, results)
        bench.record("stats: seed results (generate_series)", results / (time.perf_counter() - started), "rows/s",
                     note=f"{results:,} results, {users:,} users")  # fmt: skip

    # What autovacuum does to an insert-only table soon after a bulk load: statistics, and the
    # visibility map the raw path's index-only scan relies on. A no-op on a seed kept from before.
    with connection.cursor() as cursor:
        for model in (Result, Exposure):
            cursor.execute(f"VACUUM (ANALYZE) {model._meta.db_table}")

    # A full rollup from nothing, as after deploying onto an existing experiment.
    if ExperimentUserDay.objects.exclude(experiment=experiment).exists():
        ExperimentUserDay.objects.filter(experiment=experiment).delete()
    else:  # the bench database holds only this experiment: start from an empty, vacuumed table
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {ExperimentUserDay._meta.db_table}")
    ExperimentVariantMetric.objects.filter(experiment=experiment).delete()
    ExperimentStatsState.objects.filter(experiment=experiment).delete()
    started = time.perf_counter()
    rolled = experiment_stats_catch_up(experiment=experiment)
    rollup_seconds = time.perf_counter() - started
    bench.record("stats: full rollup of the experiment", rollup_seconds, "s", note=f"{rolled:,} results rolled up")

    def plain_group_by() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT variant_id, count(*), avg(response_time_ms), avg(tokens) "  # noqa: S608
                f"FROM {Result._meta.db_table} WHERE experiment_id = %s GROUP BY variant_id",
                [experiment.pk],
            )
            cursor.fetchall()

    group_by_ms = _timed(plain_group_by, repeat=3)
    rollup_ms = _timed(lambda: experiment_stats(experiment=experiment, source="rollup"), repeat=25)
    raw_ms = _timed(lambda: experiment_stats(experiment=experiment, source="raw"), repeat=3)
    note = f"{results:,} results, {users:,} users; baseline: plain SQL GROUP BY variant over the results"
    bench.record("stats: plain SQL GROUP BY over the results", group_by_ms, "ms", note=note)
    bench.record(
        "stats: from fresh rollups", rollup_ms, "ms", baseline=group_by_ms, baseline_name="plain GROUP BY",
        target="≤ 50 ms", note=note,
    )  # fmt: skip
    fresh = min(FRESH, results // 10)
    fresh_ms = _with_fresh_slice(
        experiment,
        fresh,
        users,
        lambda: _timed(lambda: experiment_stats(experiment=experiment, source="rollup"), repeat=25),
    )
    bench.record(
        "stats: rollup + fresh slice", fresh_ms, "ms", baseline=group_by_ms, baseline_name="plain GROUP BY",
        target="≤ 50 ms", note=f"{fresh:,} results after the watermark; {note}",
    )  # fmt: skip
    bench.record(
        "stats: from raw results", raw_ms, "ms", baseline=group_by_ms, baseline_name="plain GROUP BY",
        target="≤ 3000 ms", note=note,
    )  # fmt: skip


def _with_fresh_slice(experiment, fresh: int, users: int, measure):
    """Runs ``measure`` with ``fresh`` results recorded after the watermark (now), then deletes them
    (the seed keeps its size for the next run). Users ``u0``.. for the first half (in the rollup),
    new users for the second."""
    from django.db import connection, transaction

    from experiments.models import Result, Variant

    control, treatment = Variant.objects.filter(experiment=experiment).order_by("position")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        (inserted_at,) = cursor.fetchone()
        cursor.execute(
            f"INSERT INTO {Result._meta.db_table} (event_id, experiment_id, variant_id, user_id, occurred_at, "  # noqa: S608
            "success, response_time_ms, tokens, quality_score, user_feedback, model, recorded_at) "
            "SELECT 'bs-fresh-' || g, %s, CASE WHEN g %% 2 = 0 THEN %s ELSE %s END, "
            "'u' || CASE WHEN g < %s THEN g ELSE %s + g END, now(), random() < 0.5, 400 + random() * 800, "
            "(100 + random() * 800)::int, random(), 0, 'bench', now() FROM generate_series(0, %s) AS g",
            [experiment.pk, control.pk, treatment.pk, fresh // 2, users, fresh - 1],
        )
    try:
        return measure()
    finally:
        with connection.cursor() as cursor:  # by recorded_at (BRIN): the seed's rows are older
            cursor.execute(
                f"DELETE FROM {Result._meta.db_table} WHERE experiment_id = %s AND recorded_at >= %s",  # noqa: S608
                [experiment.pk, inserted_at],
            )
