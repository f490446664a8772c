"""SQL aggregation: raw and rollup sources give the per-user numbers scipy gets, and agree."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from scipy import stats

from experiments.metric_catalogue import RESULT_METRICS
from experiments.models import Result, Variant
from experiments.stats.models import ExperimentStatsState, ExperimentUserDay
from experiments.stats.rollup import experiment_stats_catch_up, experiment_stats_rollup
from experiments.stats.selectors import _RAW_PLAN, _planner_settings, experiment_daily_series, experiment_stats
from experiments.stats.services import experiment_stats_refresh

from . import datasets
from .conftest import DAY0, add_results, load_dataset

pytestmark = pytest.mark.django_db

AFTER_LOAD = DAY0 + timedelta(days=2)  # "now" for the rollup: after every result was recorded


def _comparison(result, variant, metric):
    return next(c for c in result["comparisons"] if c["variant"] == variant and c["metric"] == metric)


def _assert_same_stats(a: dict, b: dict, tolerance: float = 1e-9) -> None:
    assert a["srm"]["ok"] == b["srm"]["ok"]
    assert a["decision"] == b["decision"]
    for va, vb in zip(a["variants"], b["variants"], strict=True):
        assert (va["key"], va["exposures"], va["results"]) == (vb["key"], vb["exposures"], vb["results"])
        assert va["metrics"].keys() == vb["metrics"].keys()
        for metric in va["metrics"]:
            assert va["metrics"][metric]["n"] == vb["metrics"][metric]["n"]
            assert va["metrics"][metric]["mean"] == pytest.approx(vb["metrics"][metric]["mean"], rel=tolerance)
            assert va["metrics"][metric]["std"] == pytest.approx(vb["metrics"][metric]["std"], rel=1e-7)
    for ca, cb in zip(a["comparisons"], b["comparisons"], strict=True):
        for field in ("diff", "ci_low", "ci_high", "lift", "p_value", "chance_to_win"):
            assert ca[field] == pytest.approx(cb[field], rel=1e-6, abs=1e-9), field


@pytest.mark.parametrize(
    "make",
    [datasets.clear_win, datasets.lower_is_better, datasets.three_variants, datasets.many_calls_per_user],
    ids=lambda f: f.__name__,
)
def test_raw_sql_matches_scipy_on_per_user_values(make):
    data = make()
    experiment = load_dataset(data)
    result = experiment_stats(experiment=experiment, source="raw")
    for comparison in result["comparisons"]:
        control = data.per_user_values(data.control, comparison["metric"])
        treatment = data.per_user_values(comparison["variant"], comparison["metric"])
        expected = stats.ttest_ind(treatment, control, equal_var=False)
        ci = expected.confidence_interval()
        assert comparison["p_value"] == pytest.approx(expected.pvalue, abs=1e-6)
        assert comparison["ci_low"] == pytest.approx(ci.low, abs=1e-6)
        assert comparison["ci_high"] == pytest.approx(ci.high, abs=1e-6)
    for variant in result["variants"]:
        assert variant["results"] == sum(1 for c in data.calls if c["variant"] == variant["key"])
        for metric, summary in variant["metrics"].items():
            values = data.per_user_values(variant["key"], metric)
            assert summary["n"] == len(values)
            assert summary["mean"] == pytest.approx(values.mean(), abs=1e-6)
            assert summary["std"] == pytest.approx(values.std(ddof=1), abs=1e-6)


@pytest.mark.parametrize("make", [datasets.clear_win, datasets.three_variants], ids=lambda f: f.__name__)
def test_rollup_and_raw_agree(make):
    experiment = load_dataset(make())
    experiment_stats_rollup(now=AFTER_LOAD)
    _assert_same_stats(
        experiment_stats(experiment=experiment, source="rollup", now=AFTER_LOAD),
        experiment_stats(experiment=experiment, source="raw", now=AFTER_LOAD),
    )


def test_incremental_rollup_combines_day_sums_not_day_means():
    """A user with 1 slow call on day 0 and 9 fast calls on day 1 has the mean of 10 calls."""
    data = datasets.lower_is_better()
    experiment = load_dataset(data, recorded_at=DAY0 + timedelta(hours=1))
    variants = {v.key: v for v in Variant.objects.filter(experiment=experiment)}
    experiment_stats_catch_up(experiment=experiment, now=DAY0 + timedelta(hours=2))
    # Later batches: the same users call again, on another day, some late (an old occurred_at).
    rows = [dict(c, day=1, response_time_ms=c["response_time_ms"] / 3) for c in data.calls[::3]]
    add_results(experiment, variants, rows * 3, recorded_at=DAY0 + timedelta(hours=5))
    late = [dict(c, day=0, hour=1) for c in data.calls[1::7]]
    add_results(experiment, variants, late, recorded_at=DAY0 + timedelta(hours=8))
    assert experiment_stats_catch_up(experiment=experiment, now=DAY0 + timedelta(hours=6)) == len(rows) * 3
    assert experiment_stats_catch_up(experiment=experiment, now=AFTER_LOAD) == len(late)

    rolled = experiment_stats(experiment=experiment, source="rollup", now=AFTER_LOAD)
    raw = experiment_stats(experiment=experiment, source="raw", now=AFTER_LOAD)
    _assert_same_stats(rolled, raw)
    # The user-level mean is over all of a user's calls, whatever day they fell on.
    all_calls = data.calls + rows * 3 + late
    merged = datasets.DataSet("merged", data.primary_metric, [], data.weights, data.control, all_calls)
    control = merged.per_user_values("control", "response_time_ms")
    summary = next(v for v in rolled["variants"] if v["key"] == "control")["metrics"]["response_time_ms"]
    assert summary["mean"] == pytest.approx(control.mean(), rel=1e-9)
    assert summary["std"] == pytest.approx(control.std(ddof=1), rel=1e-7)


def test_rollup_is_idempotent_for_the_same_watermark():
    experiment = load_dataset(datasets.clear_win())
    first = experiment_stats_catch_up(experiment=experiment, now=AFTER_LOAD)
    assert first == len(datasets.clear_win().calls)
    assert experiment_stats_catch_up(experiment=experiment, now=AFTER_LOAD) == 0
    assert ExperimentStatsState.objects.get(experiment=experiment).rolled_through < AFTER_LOAD


def test_results_recorded_within_the_lag_wait_for_the_next_run(settings):
    settings.EXPERIMENT_STATS_ROLLUP_LAG_SECONDS = 60
    experiment = load_dataset(datasets.clear_win(), recorded_at=AFTER_LOAD - timedelta(seconds=30))
    assert experiment_stats_catch_up(experiment=experiment, now=AFTER_LOAD) == 0
    assert experiment_stats_catch_up(experiment=experiment, now=AFTER_LOAD + timedelta(seconds=31)) > 0


def test_stats_from_rollup_are_data_through_now_and_report_the_watermark(settings):
    settings.EXPERIMENT_STATS_ROLLUP_LAG_SECONDS = 30
    experiment = load_dataset(datasets.clear_win())
    experiment_stats_refresh(experiment=experiment, now=AFTER_LOAD)
    result = experiment_stats(experiment=experiment, now=AFTER_LOAD)
    assert result["data_through"] == AFTER_LOAD
    assert result["rolled_through"] == AFTER_LOAD - timedelta(seconds=30)
    assert result["computed_at"] == AFTER_LOAD


def test_fresh_rollup_reads_only_the_results_after_the_watermark(settings):
    settings.EXPERIMENT_STATS_MAX_STALENESS_SECONDS = 600
    experiment = load_dataset(datasets.clear_win())
    experiment_stats_rollup(now=AFTER_LOAD)
    with CaptureQueriesContext(connection) as queries:
        experiment_stats(experiment=experiment, now=AFTER_LOAD + timedelta(seconds=60))
    touching = [q["sql"] for q in queries.captured_queries if "experiments_result" in q["sql"]]
    assert len(touching) == 1
    assert '"recorded_at" >' in touching[0] or "recorded_at >" in touching[0]
    assert len(queries.captured_queries) <= 4


def test_stale_rollup_is_caught_up_on_demand(settings):
    settings.EXPERIMENT_STATS_MAX_STALENESS_SECONDS = 60
    experiment = load_dataset(datasets.clear_win())
    assert experiment_stats_refresh(experiment=experiment, now=AFTER_LOAD) == len(datasets.clear_win().calls)
    result = experiment_stats(experiment=experiment, now=AFTER_LOAD)
    assert sum(v["results"] for v in result["variants"]) == len(datasets.clear_win().calls)


def test_refresh_leaves_a_rollup_within_the_allowed_staleness_alone(settings):
    settings.EXPERIMENT_STATS_ROLLUP_LAG_SECONDS = 0
    settings.EXPERIMENT_STATS_MAX_STALENESS_SECONDS = 60
    experiment = load_dataset(datasets.clear_win(), recorded_at=AFTER_LOAD - timedelta(hours=1))
    experiment_stats_refresh(experiment=experiment, now=AFTER_LOAD - timedelta(minutes=30))
    variants = {v.key: v for v in Variant.objects.filter(experiment=experiment)}
    add_results(experiment, variants, datasets.clear_win().calls[:5], recorded_at=AFTER_LOAD - timedelta(minutes=20))
    assert experiment_stats_refresh(experiment=experiment, now=AFTER_LOAD - timedelta(minutes=29)) == 0
    assert experiment_stats_refresh(experiment=experiment, now=AFTER_LOAD) == 5


def test_reading_a_stale_rollup_writes_nothing(settings):
    settings.EXPERIMENT_STATS_MAX_STALENESS_SECONDS = 60
    experiment = load_dataset(datasets.clear_win())
    with CaptureQueriesContext(connection) as queries:
        result = experiment_stats(experiment=experiment, now=AFTER_LOAD)
    statements = [q["sql"].lstrip().split()[0].upper() for q in queries.captured_queries]
    assert set(statements) <= {"SELECT", "WITH", "SAVEPOINT", "RELEASE"}, statements
    assert not any(
        word in q["sql"].upper() for q in queries.captured_queries for word in ("INSERT", "UPDATE ", "DELETE")
    )
    # Never rolled up: every result is in the fresh slice, and all of them count.
    assert result["data_through"] == AFTER_LOAD
    assert result["rolled_through"] is None
    assert sum(v["results"] for v in result["variants"]) == len(datasets.clear_win().calls)
    assert not ExperimentStatsState.objects.filter(experiment=experiment).exists()


def test_rollup_keeps_one_row_per_user_and_day():
    data = datasets.many_calls_per_user()
    experiment = load_dataset(data)
    experiment_stats_rollup(now=AFTER_LOAD)
    expected = {(c["variant"], c["user_id"], c["day"]) for c in data.calls}
    assert ExperimentUserDay.objects.filter(experiment=experiment).count() == len(expected)


def test_daily_series_is_the_cumulative_per_user_mean():
    data = datasets.many_calls_per_user()
    experiment = load_dataset(data)
    experiment_stats_rollup(now=AFTER_LOAD)
    series = experiment_daily_series(experiment=experiment, metric="success_rate")
    # On the last day the cumulative value is the plain per-user mean over all days.
    for key in ("control", "b"):
        values = data.per_user_values(key, "success_rate")
        _last_day, value, users = series[key][-1]
        assert users == len(values)
        assert value == pytest.approx(values.mean(), rel=1e-9)
    # On day 0 only the calls of day 0 count.
    day0 = [c for c in data.calls if c["day"] == 0]
    first = datasets.DataSet("d0", "success_rate", [], data.weights, "control", day0)
    assert series["b"][0][1] == pytest.approx(first.per_user_values("b", "success_rate").mean(), rel=1e-9)


def test_rollup_skips_draft_experiments_without_results():
    assert experiment_stats_rollup(now=AFTER_LOAD) == 0


def test_rollup_finishes_a_completed_experiment_then_leaves_it_alone():
    experiment = load_dataset(datasets.clear_win())
    experiment.status = "completed"
    experiment.stopped_at = DAY0 + timedelta(days=1, hours=1)
    experiment.save(update_fields=["status", "stopped_at"])
    assert experiment_stats_rollup(now=AFTER_LOAD) == len(datasets.clear_win().calls)
    assert experiment_stats_rollup(now=AFTER_LOAD + timedelta(days=1)) == 0
    assert ExperimentStatsState.objects.get(experiment=experiment).rolled_through < AFTER_LOAD


def test_the_rollup_job_runs_the_rollup_service():
    from agentplatform.scheduling.runner import JobRequest, job_run

    experiment = load_dataset(datasets.clear_win())
    assert job_run(request=JobRequest(job="experiment_stats_rollup")).rows_affected == len(datasets.clear_win().calls)
    assert ExperimentStatsState.objects.filter(experiment=experiment).exists()


def test_covering_index_holds_every_result_metric_column():
    # The raw statistics read only this index; a metric whose column it lacks would send every
    # index entry back to the table.
    index = next(i for i in Result._meta.indexes if i.name == "result_exp_variant_user_cov")
    assert index.fields == ["experiment", "variant", "user_id"]
    columns = {Result._meta.get_field(metric.field).column for metric in RESULT_METRICS.values()}
    assert columns <= set(index.include)
    if connection.vendor == "postgresql":  # the migration writes this index in SQL: check the database's
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_indexdef('result_exp_variant_user_cov'::regclass)")
            definition = cursor.fetchone()[0]
        key, include = definition.split(" INCLUDE ")
        assert key.endswith('(experiment_id, variant_id, user_id COLLATE "C")')
        assert columns <= set(include.strip("()").split(", "))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans and planner settings")
def test_raw_query_streams_users_from_the_covering_index():
    experiment = load_dataset(datasets.three_variants())
    with CaptureQueriesContext(connection) as queries:
        experiment_stats(experiment=experiment, source="raw")
    raw_sql = next(q["sql"] for q in queries.captured_queries if "per_user" in q["sql"])
    with transaction.atomic(), connection.cursor() as cursor, _planner_settings(cursor, _RAW_PLAN):
        cursor.execute(f"EXPLAIN {raw_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using result_exp_variant_user_cov" in plan, plan
    assert "HashAggregate" not in plan
    assert "Sort" not in plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL planner settings")
def test_raw_query_puts_the_callers_planner_settings_back():
    experiment = load_dataset(datasets.clear_win())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_hashagg = on")
        experiment_stats(experiment=experiment, source="raw")
        cursor.execute("SELECT current_setting('enable_hashagg'), current_setting('enable_seqscan')")
        assert cursor.fetchone() == ("on", "on")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL storage parameters")
def test_results_table_is_vacuumed_after_few_inserts():
    # Keeps the newest results' pages all-visible, so the raw path's index-only scan stays index-only.
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [Result._meta.db_table])
        assert "autovacuum_vacuum_insert_scale_factor=0.01" in cursor.fetchone()[0]


def test_rollup_plus_fresh_results_equal_raw_for_users_before_after_and_on_both_sides():
    """The default read combines the rollup with the results recorded after its watermark per user:
    a user whose calls straddle the watermark has one value over all their calls, not two."""
    from experiments.models import Exposure

    data = datasets.clear_win()
    by_user: dict[str, list[dict]] = {}
    for call in data.calls:
        by_user.setdefault(call["user_id"], []).append(call)
    before, after, sides = [], [], {"before": set(), "after": set(), "both": set()}
    for index, (user, calls) in enumerate(sorted(by_user.items())):
        if index % 3 == 0:
            before += calls
            sides["before"].add(user)
        elif index % 3 == 1:
            after += calls
            sides["after"].add(user)
        else:
            half = max(1, len(calls) // 2)
            before += calls[:half]
            after += calls[half:]
            sides["both" if calls[half:] else "before"].add(user)
    assert all(len(users) > 50 for users in sides.values())
    first = datasets.DataSet("split", data.primary_metric, data.guardrail_metrics, data.weights, data.control, before)
    experiment = load_dataset(first, recorded_at=DAY0 + timedelta(hours=1))
    variants = {v.key: v for v in Variant.objects.filter(experiment=experiment)}
    Exposure.objects.bulk_create(
        Exposure(experiment=experiment, variant=variants[by_user[u][0]["variant"]], user_id=u, first_seen_at=DAY0)
        for u in sorted(sides["after"])
    )
    assert experiment_stats_catch_up(experiment=experiment, now=DAY0 + timedelta(hours=2)) == len(before)
    add_results(experiment, variants, after, recorded_at=DAY0 + timedelta(hours=5))

    combined = experiment_stats(experiment=experiment, now=AFTER_LOAD)
    raw = experiment_stats(experiment=experiment, source="raw", now=AFTER_LOAD)
    _assert_same_stats(combined, raw)
    assert combined["rolled_through"] < DAY0 + timedelta(hours=5) <= combined["data_through"]
    assert sum(v["results"] for v in combined["variants"]) == len(data.calls)
    # And both equal numpy on the per-user values of every call.
    for variant in combined["variants"]:
        for metric, summary in variant["metrics"].items():
            values = data.per_user_values(variant["key"], metric)
            assert summary["n"] == len(values)
            assert summary["mean"] == pytest.approx(values.mean(), rel=1e-9)
            assert summary["std"] == pytest.approx(values.std(ddof=1), rel=1e-7)
    for comparison in combined["comparisons"]:
        expected = stats.ttest_ind(
            data.per_user_values(comparison["variant"], comparison["metric"]),
            data.per_user_values(data.control, comparison["metric"]),
            equal_var=False,
        )
        assert comparison["p_value"] == pytest.approx(expected.pvalue, abs=1e-9)
    # Nothing was written by the read: a later rollup run still rolls exactly the fresh results once.
    assert experiment_stats_catch_up(experiment=experiment, now=AFTER_LOAD) == len(after)
    _assert_same_stats(experiment_stats(experiment=experiment, now=AFTER_LOAD), raw)


def test_daily_chart_starts_at_the_experiment_start_and_still_ends_at_the_analysis_mean():
    """Results dated before the start (an agent's clock, a backfill) count from the first day."""
    data = datasets.many_calls_per_user()
    experiment = load_dataset(data)
    # Started on day 1 (DAY0 + 1): the calls dated day 0 fold into day 1.
    experiment.started_at = DAY0 + timedelta(days=1, hours=3)
    experiment.save(update_fields=["started_at"])
    experiment_stats_rollup(now=AFTER_LOAD)
    series = experiment_daily_series(experiment=experiment, metric="success_rate")
    assert any(c["day"] == 0 for c in data.calls)
    first_day = (DAY0 + timedelta(days=1)).date()
    for key in ("control", "b"):
        days = [day for day, _, _ in series[key]]
        assert days[0] == first_day and days == sorted(set(days))
        values = data.per_user_values(key, "success_rate")
        _last, value, users = series[key][-1]
        assert (users, value) == (len(values), pytest.approx(values.mean(), rel=1e-9))


def test_a_rollup_run_between_the_watermark_read_and_the_statement_is_not_counted_twice(monkeypatch):
    """The rollup commits its rows and its watermark together; the read sees the watermark moved
    inside its statement and reads again with the new one."""
    from experiments.stats import selectors

    data = datasets.clear_win()
    experiment = load_dataset(data, recorded_at=DAY0 + timedelta(hours=1))
    experiment_stats_catch_up(experiment=experiment, now=DAY0 + timedelta(hours=2))
    variants = {v.key: v for v in Variant.objects.filter(experiment=experiment)}
    add_results(experiment, variants, data.calls[::4], recorded_at=DAY0 + timedelta(hours=5))
    real, calls = selectors._fresh_user_sql, []

    def rollup_sneaks_in(experiment_id, after):
        calls.append(after)
        if len(calls) == 1:  # after the watermark was read, before the statement runs
            assert experiment_stats_catch_up(experiment=experiment, now=AFTER_LOAD) == len(data.calls[::4])
        return real(experiment_id, after)

    monkeypatch.setattr(selectors, "_fresh_user_sql", rollup_sneaks_in)
    combined = experiment_stats(experiment=experiment, now=AFTER_LOAD)
    assert len(calls) == 2 and calls[0] < calls[1]
    raw = experiment_stats(experiment=experiment, source="raw", now=AFTER_LOAD)
    _assert_same_stats(combined, raw)
    assert sum(v["results"] for v in combined["variants"]) == len(data.calls) + len(data.calls[::4])
