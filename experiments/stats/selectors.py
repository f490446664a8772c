"""Reads an experiment's statistics: aggregates from SQL, then the pure analysis.

Two sources give the same numbers (a test holds them to each other):

- ``rollup`` (default): exact and fresh at rollup cost. The few ``ExperimentVariantMetric`` rows
  the rollup keeps through its watermark, plus the results recorded after the watermark combined
  in at the per-user level (``experiment_aggregates_combined``): every acknowledged result counts,
  and ``data_through`` is the moment of the query (``rolled_through`` is the watermark). Reading
  writes nothing; the API and the admin call ``experiments.stats.services.experiment_stats_refresh``
  first, which catches the rollup up when it is staler than allowed, so the fresh slice stays small.
- ``raw``: one query over the raw results, reducing each user to one value per metric (the user's
  mean; for ``success_rate`` the share of successful calls) and then each variant to count, sum
  and sum of squares; ``data_through`` is the moment of the query. On PostgreSQL the query reads
  only the covering index ``result_exp_variant_user_cov``, in (variant, user) order, so each user
  is aggregated as a stream rather than hashed among a million others (docs/statistics.md).

Trace metrics (cost per user, …; ``trace_metrics.py``) come from one aggregate over the exposures
and their linked traces: at read time for ``raw``, stored by each rollup catch-up for ``rollup``
(counted through the watermark, as are the exposures behind the SRM check).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from agentplatform.errors import ValidationFailed
from experiments.metric_catalogue import METRICS, RESULT_METRICS, TRACE_METRICS
from experiments.models import Experiment, Exposure, Result, Variant

from .analysis import AnalysisSettings, VariantAggregate, experiment_analyse
from .models import CALLS, ExperimentStatsState, ExperimentUserDay, ExperimentVariantMetric, metric_columns
from .moments import Moments
from .rollup import EXPOSURES, moment_changes_sql
from .trace_metrics import trace_metric_moments, trace_metric_user_days_sql

SOURCES = ("rollup", "raw")

# Planner settings for the raw query (PostgreSQL): an ordered index-only scan of the covering index
# feeding streaming GroupAggregates. Left to itself the planner prefers a sequential scan into a
# million-group HashAggregate, which is slower on large experiments (it mis-costs the cached index
# as random reads and the hash table as cheap; bench/README.md, "Figures behind the code").
_RAW_PLAN = {"enable_hashagg": "off", "enable_sort": "off", "enable_seqscan": "off", "enable_bitmapscan": "off"}


def _raw_value_sql(field: str) -> str:
    column = connection.ops.quote_name(Result._meta.get_field(field).column)
    if field == "success":
        # Float constants: "1.0" would be NUMERIC in PostgreSQL, whose AVG is several times slower.
        one, zero = "CAST(1 AS DOUBLE PRECISION)", "CAST(0 AS DOUBLE PRECISION)"
        return f"CASE WHEN {column} THEN {one} WHEN NOT {column} THEN {zero} END"
    return f"CAST({column} AS DOUBLE PRECISION)"


@contextmanager
def _planner_settings(cursor, values: dict[str, str]) -> Iterator[None]:
    """Sets PostgreSQL planner settings for the statements inside, then puts the previous ones back.

    ``set_config(..., true)`` is transaction-local; restoring explicitly also covers a caller's
    outer transaction (where the ``atomic`` block is only a savepoint). After an error the
    savepoint's rollback restores them. A no-op on other databases.
    """
    if connection.vendor != "postgresql":
        yield
        return
    names = list(values)
    cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names)), names)
    previous = dict(zip(names, cursor.fetchone(), strict=True))
    setting = "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names))
    cursor.execute(setting, [item for pair in values.items() for item in pair])
    yield
    cursor.execute(setting, [item for pair in previous.items() for item in pair])


def experiment_aggregates_raw(
    *, experiment: Experiment, metrics: list[str] | None = None
) -> tuple[dict[int, dict[str, Moments]], dict[int, int]]:
    """Per variant: per-metric moments of per-user values, and exposures — straight from raw rows.

    One query: the inner GROUP BY reduces each user to one value per metric, the outer one each
    variant to count, sum and sum of squares. Only the named result metrics are computed (all by
    default); the trace metrics among ``metrics`` come from one more query (``trace_metrics.py``).
    """
    names = [name for name in RESULT_METRICS if metrics is None or name in metrics]
    traced = [name for name in TRACE_METRICS if metrics is None or name in metrics]
    user_values = "".join(f", AVG({_raw_value_sql(RESULT_METRICS[name].field)}) AS {name}" for name in names)
    moments = "".join(f", COUNT({name}), SUM({name}), SUM({name} * {name})" for name in names)
    # The covering index orders user_id bytewise ("C") on PostgreSQL; grouping in the same collation
    # lets the scan's order serve the GROUP BY (equality is the same under any deterministic one).
    user = 'user_id COLLATE "C"' if connection.vendor == "postgresql" else "user_id"
    sql = (
        f"SELECT variant_id, COUNT(*), SUM(calls), SUM(calls * calls){moments} FROM ("  # noqa: S608 - identifiers from the metric catalogue
        f"SELECT variant_id, COUNT(*) AS calls{user_values} "
        f"FROM {connection.ops.quote_name(Result._meta.db_table)} WHERE experiment_id = %s "
        f"GROUP BY variant_id, {user}) per_user GROUP BY variant_id"
    )
    out: dict[int, dict[str, Moments]] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        with _planner_settings(cursor, _RAW_PLAN):
            cursor.execute(sql, [experiment.pk])
            rows = cursor.fetchall()
        for row in rows:
            variant_id, values = row[0], row[1:]
            metrics = {CALLS: Moments(n=int(values[0]), total=float(values[1]), sum_sq=float(values[2]))}
            for index, name in enumerate(names):
                n, total, sum_sq = values[3 + 3 * index : 6 + 3 * index]
                if n:
                    metrics[name] = Moments(n=int(n), total=float(total), sum_sq=float(sum_sq))
            out[variant_id] = metrics
    exposures = dict(
        Exposure.objects.filter(experiment=experiment)
        .order_by()
        .values("variant_id")
        .annotate(n=Count("id"))
        .values_list("variant_id", "n")
    )
    for variant_id, by_metric in trace_metric_moments(experiment_id=experiment.pk, metrics=traced).items():
        out.setdefault(variant_id, {}).update(by_metric)
    return out, exposures


def experiment_aggregates_rollup(*, experiment: Experiment) -> tuple[dict[int, dict[str, Moments]], dict[int, int]]:
    """The same aggregates read from the rollup's per-variant rows."""
    out: dict[int, dict[str, Moments]] = defaultdict(dict)
    exposures: dict[int, int] = {}
    rows = ExperimentVariantMetric.objects.filter(experiment=experiment).values_list(
        "variant_id", "metric", "users", "total", "sum_sq"
    )
    for variant_id, metric, users, total, sum_sq in rows:
        if metric == EXPOSURES:
            exposures[variant_id] = users
        elif users > 0:
            out[variant_id][metric] = Moments(n=users, total=total, sum_sq=sum_sq)
    return dict(out), exposures


def _fresh_user_sql(experiment_id: int, after: datetime | None) -> tuple[str, list]:
    """Per variant and user, the counts and sums (``ExperimentUserDay``'s columns) of the results
    recorded after ``after`` (all of them without a watermark)."""
    quote = connection.ops.quote_name
    parts = ["COUNT(*) AS results"]
    for metric in RESULT_METRICS.values():
        column = quote(Result._meta.get_field(metric.field).column)
        parts.append(f"COUNT({column}) AS {metric.field}_count")
        parts.append(f"COALESCE(SUM({_raw_value_sql(metric.field)}), 0) AS {metric.field}_sum")
    where, params = "experiment_id = %s", [experiment_id]
    if after is not None:
        # The BRIN index on recorded_at finds the newest block ranges; the slice is seconds of results.
        where += " AND recorded_at > %s"
        params.append(connection.ops.adapt_datetimefield_value(after))
    sql = (
        f"SELECT variant_id, user_id, {', '.join(parts)} "  # noqa: S608 - identifiers from model metadata
        f"FROM {quote(Result._meta.db_table)} WHERE {where} GROUP BY variant_id, user_id"
    )
    return sql, params


def experiment_aggregates_combined(
    *, experiment: Experiment, attempts: int = 5
) -> tuple[dict[int, dict[str, Moments]], dict[int, int], datetime | None]:
    """The rollup through its watermark plus every result recorded after it, as one read.

    One statement (one snapshot): the stored per-variant moments, plus the change the fresh slice
    makes to them — per touched user the value over all their results (earlier ones from
    ``ExperimentUserDay``, the fresh ones from the raw rows) minus the value the rollup holds,
    exactly as a rollup run would add it (``rollup.moment_changes_sql``), but nothing is written.
    The result metrics then equal ``source=raw`` for users seen before, after, and on both sides
    of the watermark. Exposures and trace metrics stay as the rollup counted them at its watermark.

    The watermark is read first and checked inside the statement; if a rollup run moved it in
    between (its rows and the watermark commit together), the read is repeated with the new one.
    Returns (aggregates, exposures, watermark).
    """
    quote = connection.ops.quote_name
    state_table = quote(ExperimentStatsState._meta.db_table)
    user_day = quote(ExperimentUserDay._meta.db_table)
    variant_metric = quote(ExperimentVariantMetric._meta.db_table)
    columns = ["results", *[c for m in RESULT_METRICS for c in metric_columns(m)]]
    sums = ", ".join(f"SUM(d.{c}) AS {c}" for c in columns)
    if connection.vendor == "postgresql":
        # One unique-index range lookup per fresh user, whatever the planner guesses about the fresh
        # slice (its rows are too new for the statistics: it estimates one row, and a join of two
        # such guesses became a nested loop over 20,000 x 20,000 rows).
        old_join = (
            f"LEFT JOIN LATERAL (SELECT {sums} FROM {user_day} d WHERE d.experiment_id = %s "  # noqa: S608 - identifiers from model metadata
            "AND d.variant_id = n.variant_id AND d.user_id = n.user_id) o ON TRUE"
        )
    else:
        old_join = (
            f"LEFT JOIN (SELECT d.variant_id, d.user_id, {sums} FROM new_user t JOIN {user_day} d "  # noqa: S608 - identifiers from model metadata
            "ON d.experiment_id = %s AND d.variant_id = t.variant_id AND d.user_id = t.user_id "
            "GROUP BY d.variant_id, d.user_id) o ON o.variant_id = n.variant_id AND o.user_id = n.user_id"
        )
    for _ in range(attempts):
        watermark = (
            ExperimentStatsState.objects.filter(experiment=experiment).values_list("rolled_through", flat=True).first()
        )
        new_user, new_params = _fresh_user_sql(experiment.pk, watermark)
        if watermark is None:
            moved, moved_params = (
                f"(SELECT COUNT(*) FROM {state_table} WHERE experiment_id = %s AND rolled_through IS NOT NULL)",  # noqa: S608 - identifiers from model metadata
                [experiment.pk],
            )
        else:
            moved, moved_params = (
                f"(SELECT COUNT(*) FROM {state_table} WHERE experiment_id = %s AND rolled_through <> %s)",  # noqa: S608 - identifiers from model metadata
                [experiment.pk, connection.ops.adapt_datetimefield_value(watermark)],
            )
        sql = (
            f"{moment_changes_sql(new_user=new_user, old_join=old_join)} "  # noqa: S608 - identifiers from model metadata
            f"SELECT variant_id, metric, SUM(users), SUM(total), SUM(sum_sq), {moved} FROM ("
            f"SELECT variant_id, metric, users, total, sum_sq FROM {variant_metric} WHERE experiment_id = %s "
            "UNION ALL SELECT variant_id, metric, users, total, sum_sq FROM deltas) combined "
            "GROUP BY variant_id, metric"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*new_params, experiment.pk, *moved_params, experiment.pk])
            rows = cursor.fetchall()
        if any(row[5] for row in rows):
            continue  # a rollup run committed between reading the watermark and the statement
        out: dict[int, dict[str, Moments]] = defaultdict(dict)
        exposures: dict[int, int] = {}
        for variant_id, metric, users, total, sum_sq, _moved in rows:
            if metric == EXPOSURES:
                exposures[variant_id] = int(users)
            elif users and int(users) > 0:
                out[variant_id][metric] = Moments(n=int(users), total=float(total), sum_sq=float(sum_sq))
        return dict(out), exposures, watermark
    raise RuntimeError(f"experiment {experiment.key}: the rollup watermark kept moving during the stats read")


def _analysis_settings(experiment: Experiment) -> AnalysisSettings:
    return AnalysisSettings(
        alpha=settings.EXPERIMENT_STATS_ALPHA,
        power=settings.EXPERIMENT_STATS_POWER,
        sequential=experiment.sequential,
        sequential_tuning=settings.EXPERIMENT_STATS_SEQUENTIAL_TUNING,
        min_users_per_variant=settings.EXPERIMENT_STATS_MIN_USERS_PER_VARIANT,
        target_mde=experiment.target_mde,
    )


def experiment_stats(*, experiment: Experiment, source: str = "rollup", now: datetime | None = None) -> dict:
    """The full ``GET /api/v1/experiments/{key}/stats`` body for one experiment."""
    if source not in SOURCES:
        raise ValidationFailed(f"source must be one of {', '.join(SOURCES)}.", details={"source": source})
    now = now or timezone.now()
    # The experiment's own metrics: the primary, then its guardrails.
    needed = [
        experiment.primary_metric,
        *[m for m in experiment.guardrail_metrics or [] if m != experiment.primary_metric],
    ]
    if source == "raw":
        aggregates, exposures = experiment_aggregates_raw(experiment=experiment, metrics=needed)
        data_through, rolled_through = now, None
    else:
        aggregates, exposures, rolled_through = experiment_aggregates_combined(experiment=experiment)
        data_through = now

    variants = list(Variant.objects.filter(experiment=experiment).order_by("position", "id"))
    variant_aggregates = []
    for variant in variants:
        metrics = aggregates.get(variant.pk, {})
        calls = metrics.get(CALLS)
        variant_aggregates.append(
            VariantAggregate(
                key=variant.key,
                is_control=variant.is_control,
                weight=variant.weight,
                exposures=int(exposures.get(variant.pk, 0)),
                results=round(calls.total) if calls else 0,
                metrics={name: metrics[name] for name in needed if name in metrics},
            )
        )
    analysis = experiment_analyse(
        variants=variant_aggregates,
        primary_metric=experiment.primary_metric,
        guardrail_metrics=list(experiment.guardrail_metrics or []),
        higher_is_better={name: metric.higher_is_better for name, metric in METRICS.items()},
        settings=_analysis_settings(experiment),
    )
    return {
        "experiment": experiment.key,
        "status": experiment.status,
        "computed_at": now,
        "data_through": data_through,
        "rolled_through": rolled_through,
        **analysis,
    }


def experiment_daily_series(*, experiment: Experiment, metric: str) -> dict[str, list[tuple[date, float, int]]]:
    """Cumulative per-user metric per variant at the end of each day.

    For day D each user's value is Σsum/Σcount over their days up to D (a sum metric's: Σsum),
    and the variant's value is the mean over users seen by D. SQL emits, per variant and day, only
    the change: each user contributes (value now - value at their previous day) and one more user
    on their first day; the running totals are summed here over the (few) days. Result metrics
    read the daily rollup; trace metrics the exposures and their traces (``trace_metrics.py``).
    """
    if metric in TRACE_METRICS:
        user_days, params = trace_metric_user_days_sql(experiment_id=experiment.pk, metric=metric)
        summed = TRACE_METRICS[metric].aggregate == "sum"
    else:
        count, total = metric_columns(metric)
        user_days = (
            f"SELECT variant_id, user_id, day, {count} AS n, {total} AS total "  # noqa: S608 - identifiers from the metric catalogue
            f"FROM {connection.ops.quote_name(ExperimentUserDay._meta.db_table)} "
            f"WHERE experiment_id = %s AND {count} > 0"
        )
        params, summed = [experiment.pk], False
    value = "SUM(total) OVER w * 1.0" if summed else "SUM(total) OVER w * 1.0 / SUM(n) OVER w"
    sql = (
        f"WITH per_day AS (SELECT variant_id, user_id, day, {value} AS value FROM ({user_days}) user_days "  # noqa: S608 - SQL built above from the metric catalogue
        "WINDOW w AS (PARTITION BY variant_id, user_id ORDER BY day ROWS UNBOUNDED PRECEDING)), "
        "changes AS (SELECT variant_id, day, value, "
        "LAG(value) OVER (PARTITION BY variant_id, user_id ORDER BY day) AS previous FROM per_day) "
        "SELECT variant_id, day, SUM(value - COALESCE(previous, 0)), "
        "SUM(CASE WHEN previous IS NULL THEN 1 ELSE 0 END) FROM changes GROUP BY variant_id, day "
        "ORDER BY variant_id, day"
    )
    keys = dict(Variant.objects.filter(experiment=experiment).values_list("pk", "key"))
    series: dict[str, list[tuple[date, float, int]]] = {key: [] for key in keys.values()}
    running: dict[int, tuple[float, int]] = defaultdict(lambda: (0.0, 0))
    first_day = _first_exposure_day(experiment)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for variant_id, day, value_change, new_users in cursor.fetchall():
            value_sum, users = running[variant_id]
            value_sum, users = value_sum + float(value_change), users + int(new_users)
            running[variant_id] = (value_sum, users)
            if isinstance(day, str):  # SQLite returns dates as text
                day = date.fromisoformat(day)
            points = series[keys[variant_id]]
            if first_day is not None and day < first_day:
                # A result dated before the experiment's first exposure (an agent's clock, a backfill)
                # counts from the first day: the chart starts there and still ends at the analysis mean.
                day = first_day
            if points and points[-1][0] == day:  # the folded days' point, now superseded
                points.pop()
            points.append((day, value_sum / users if users else 0.0, users))
    return series


def _first_exposure_day(experiment: Experiment) -> date | None:
    """The UTC day the chart starts: the experiment's start (no user is exposed before a running
    experiment resolves them), else — an experiment never started — its first exposure."""
    started = experiment.started_at
    if started is None:
        started = (
            Exposure.objects.filter(experiment=experiment)
            .order_by("first_seen_at")
            .values_list("first_seen_at", flat=True)
            .first()
        )
    return None if started is None else started.astimezone(UTC).date()
