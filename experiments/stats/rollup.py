"""Maintains the statistics rollups incrementally from the raw results.

Each run reads, per experiment, only the results *recorded* after the experiment's watermark
(``ExperimentStatsState.rolled_through``) and up to ``now - EXPERIMENT_STATS_ROLLUP_LAG_SECONDS``,
so late-arriving results (an old ``occurred_at``) are counted exactly once, on the day they
occurred. Everything happens in SQL inside one transaction per experiment, under a row lock on
the state, so two workers (or a worker and an on-demand catch-up) never count a result twice:

1. aggregate the new results per variant, user and UTC day into a temporary table;
2. read the touched users' totals *before* this batch from ``ExperimentUserDay``;
3. upsert the batch into ``ExperimentUserDay`` (adding counts and sums);
4. add, per variant and metric, the change of each touched user's value (new - old, new² - old²,
   and one more user where the user had no value before) to ``ExperimentVariantMetric``;
5. recount exposures per variant (an index-only count) and advance the watermark;
6. for an experiment judged on trace metrics (cost per user, …), recompute their per-variant
   moments from the traces that started by the watermark and replace the stored ones.

Trace metrics are recomputed rather than added to: a trace's totals change as its spans arrive
(in any order, for as long as the agent exports them), repricing changes its cost, and retention
drops old traces; only a recount stays equal to what ``source=raw`` reads. It is one aggregate
over the experiment's exposures and linked traces (``trace_metrics.py``), and runs only for the
experiments that chose a trace metric.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, F, FloatField, Q, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from agentplatform.counters import increment
from experiments.metric_catalogue import RESULT_METRICS, TRACE_METRICS
from experiments.models import Experiment, ExperimentStatus, Exposure, Result

from .models import CALLS, ExperimentStatsState, ExperimentUserDay, ExperimentVariantMetric, metric_columns
from .sql import use_work_mem
from .trace_metrics import experiment_trace_metrics, trace_metric_moments

logger = logging.getLogger(__name__)

EXPOSURES = "_exposures"  # pseudo-metric row holding the variant's exposure count in ``users``

_BATCH = "stats_rollup_batch"
_OLD = "stats_rollup_old"


def _metric_value_expression(field: str):
    """The per-result value a metric sums: booleans count as 1/0, integers as floats."""
    if field == "success":
        return Case(
            When(success=True, then=Value(1.0)), When(success=False, then=Value(0.0)), output_field=FloatField()
        )
    return Cast(field, FloatField())


def _batch_queryset(experiment_id: int, after: datetime | None, through: datetime):
    results = Result.objects.filter(experiment_id=experiment_id, recorded_at__lte=through)
    if after is not None:
        results = results.filter(recorded_at__gt=after)
    aggregates = {"results": Count("id")}
    for metric in RESULT_METRICS.values():
        aggregates[f"{metric.field}_count"] = Count(metric.field)
        aggregates[f"{metric.field}_sum"] = Coalesce(
            Sum(_metric_value_expression(metric.field), output_field=FloatField()), Value(0.0)
        )
    return (
        results.order_by()
        .annotate(day=TruncDate("occurred_at"))
        .values("variant_id", "user_id", "day")
        .annotate(**aggregates)
    )


def _columns() -> list[str]:
    return ["results", *[c for m in RESULT_METRICS for c in metric_columns(m)]]


def moment_changes_sql(*, new_user: str, old: str | None = None, old_join: str | None = None) -> str:
    """A ``WITH`` clause defining ``deltas``: per variant and metric, the change (users, Σv, Σv²)
    that adding the results in ``new_user`` makes to the moments of per-user values.

    ``new_user``: SQL of rows (variant_id, user_id, <the ``ExperimentUserDay`` sum columns>) — one
    row per user, the new results' counts and sums; ``old``: a table or parenthesised query of the
    same columns holding those users' totals before them (users without earlier results absent);
    or ``old_join``, a whole join clause giving ``o`` those columns per row of ``new_user n`` (a
    LATERAL lookup, NULLs for a user without earlier results).
    Each touched user contributes new value - old value (and its square's change), plus one user
    where they had no value before: exactly what the moments of the combined results are minus
    the moments of the old ones. The rollup adds it to ``ExperimentVariantMetric``; the stats read
    adds it, without writing, for the results after the watermark (``selectors.py``).
    """
    value_columns = [
        "o.results AS old_" + CALLS.strip("_"),
        f"COALESCE(o.results, 0) + n.results AS new_{CALLS.strip('_')}",
    ]
    for metric in RESULT_METRICS:
        count, total = metric_columns(metric)
        value_columns.append(f"CASE WHEN o.{count} > 0 THEN o.{total} / o.{count} END AS old_{metric}")
        value_columns.append(
            f"CASE WHEN COALESCE(o.{count}, 0) + n.{count} > 0 THEN (COALESCE(o.{total}, 0) + n.{total}) "
            f"/ (COALESCE(o.{count}, 0) + n.{count}) END AS new_{metric}"
        )
    deltas = []
    for metric in [CALLS, *RESULT_METRICS]:
        name = metric.strip("_")
        deltas.append(
            f"SELECT variant_id, '{metric}' AS metric, "  # noqa: S608 - identifiers from model metadata and the metric catalogue
            f"SUM(CASE WHEN old_{name} IS NULL AND new_{name} IS NOT NULL THEN 1 ELSE 0 END) AS users, "
            f"SUM(COALESCE(new_{name}, 0) - COALESCE(old_{name}, 0)) AS total, "
            f"SUM(COALESCE(new_{name} * new_{name}, 0) - COALESCE(old_{name} * old_{name}, 0)) AS sum_sq "
            f"FROM joined GROUP BY variant_id"
        )
    return (
        f"WITH new_user AS ({new_user}), "  # noqa: S608 - identifiers from model metadata and the metric catalogue
        f"joined AS (SELECT n.variant_id, {', '.join(value_columns)} FROM new_user n "
        f"{old_join or f'LEFT JOIN {old} o ON o.variant_id = n.variant_id AND o.user_id = n.user_id'}), "
        f"deltas AS ({' UNION ALL '.join(deltas)})"
    )


def _roll_batch(cursor, experiment_id: int, after: datetime | None, through: datetime) -> int:
    """Steps 1-4 for one experiment; returns the number of results rolled up."""
    use_work_mem(cursor)
    quote = connection.ops.quote_name
    user_day = quote(ExperimentUserDay._meta.db_table)
    variant_metric = quote(ExperimentVariantMetric._meta.db_table)
    columns = _columns()

    for table in (_BATCH, _OLD):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
    sql, params = _batch_queryset(experiment_id, after, through).query.sql_with_params()
    cursor.execute(f"CREATE TEMPORARY TABLE {_BATCH} AS {sql}", params)
    cursor.execute(f"SELECT COALESCE(SUM(results), 0) FROM {_BATCH}")  # noqa: S608 - identifiers from model metadata and the metric catalogue
    rolled = int(cursor.fetchone()[0])
    if rolled == 0:
        return 0
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {_BATCH}")

    sums = ", ".join(f"SUM(d.{c}) AS {c}" for c in columns)
    touched = f"(SELECT DISTINCT variant_id, user_id FROM {_BATCH}) b"  # noqa: S608 - a temporary table name
    if connection.vendor == "postgresql":
        # LATERAL makes it one unique-index range lookup per touched user whatever the planner's
        # statistics say (a freshly filled rollup table is not analysed yet and looks tiny).
        old_sql = (
            f"SELECT b.variant_id, b.user_id, {', '.join(f'o.{c}' for c in columns)} FROM {touched} "  # noqa: S608 - identifiers from model metadata
            f"CROSS JOIN LATERAL (SELECT {sums} FROM {user_day} d WHERE d.experiment_id = %s "
            "AND d.variant_id = b.variant_id AND d.user_id = b.user_id) o WHERE o.results IS NOT NULL"
        )
    else:
        old_sql = (
            f"SELECT d.variant_id, d.user_id, {sums} FROM {touched} JOIN {user_day} d "  # noqa: S608 - identifiers from model metadata
            "ON d.experiment_id = %s AND d.variant_id = b.variant_id AND d.user_id = b.user_id "
            "GROUP BY d.variant_id, d.user_id"
        )
    cursor.execute(f"CREATE TEMPORARY TABLE {_OLD} AS {old_sql}", [experiment_id])

    listed = ", ".join(columns)
    increments = ", ".join(f"{c} = {user_day}.{c} + excluded.{c}" for c in columns)
    cursor.execute(
        f"INSERT INTO {user_day} (experiment_id, variant_id, user_id, day, {listed}) "  # noqa: S608 - identifiers from model metadata and the metric catalogue
        f"SELECT %s, variant_id, user_id, day, {listed} FROM {_BATCH} WHERE 1 = 1 "
        # In key order: the unique index is then written page by page, not at random.
        "ORDER BY variant_id, user_id, day "
        f"ON CONFLICT (experiment_id, variant_id, user_id, day) DO UPDATE SET {increments}",
        [experiment_id],
    )

    new_sums = ", ".join(f"SUM(b.{c}) AS {c}" for c in columns)
    new_user = f"SELECT b.variant_id, b.user_id, {new_sums} FROM {_BATCH} b GROUP BY b.variant_id, b.user_id"  # noqa: S608 - identifiers from model metadata
    cursor.execute(
        f"{moment_changes_sql(new_user=new_user, old=_OLD)} "  # noqa: S608 - identifiers from model metadata
        f"INSERT INTO {variant_metric} (experiment_id, variant_id, metric, users, total, sum_sq) "
        "SELECT %s, variant_id, metric, users, total, sum_sq FROM deltas "
        "WHERE 1 = 1 ON CONFLICT (experiment_id, variant_id, metric) DO UPDATE SET "
        f"users = {variant_metric}.users + excluded.users, total = {variant_metric}.total + excluded.total, "
        f"sum_sq = {variant_metric}.sum_sq + excluded.sum_sq",
        [experiment_id],
    )
    for table in (_BATCH, _OLD):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
    return rolled


def _count_exposures(experiment_id: int) -> None:
    counts = (
        Exposure.objects.filter(experiment_id=experiment_id).order_by().values("variant_id").annotate(n=Count("id"))
    )
    rows = [
        ExperimentVariantMetric(
            experiment_id=experiment_id, variant_id=row["variant_id"], metric=EXPOSURES, users=row["n"]
        )
        for row in counts
    ]
    ExperimentVariantMetric.objects.filter(experiment_id=experiment_id, metric=EXPOSURES).delete()
    ExperimentVariantMetric.objects.bulk_create(rows)


def _store_trace_metrics(experiment: Experiment, through: datetime) -> None:
    """Step 6: replaces the experiment's stored trace-metric moments with a recount."""
    chosen = experiment_trace_metrics(experiment)
    ExperimentVariantMetric.objects.filter(experiment_id=experiment.pk, metric__in=list(TRACE_METRICS)).delete()
    if not chosen:
        return
    moments = trace_metric_moments(experiment_id=experiment.pk, metrics=chosen, through=through)
    ExperimentVariantMetric.objects.bulk_create(
        ExperimentVariantMetric(
            experiment_id=experiment.pk,
            variant_id=variant_id,
            metric=metric,
            users=values.n,
            total=values.total,
            sum_sq=values.sum_sq,
        )
        for variant_id, by_metric in moments.items()
        for metric, values in by_metric.items()
    )


def experiment_stats_catch_up(*, experiment: Experiment, now: datetime | None = None) -> int:
    """Rolls one experiment's results up to ``now`` minus the lag; returns the results rolled."""
    through = (now or timezone.now()) - timedelta(seconds=settings.EXPERIMENT_STATS_ROLLUP_LAG_SECONDS)
    ExperimentStatsState.objects.get_or_create(experiment=experiment)
    with transaction.atomic():
        state = ExperimentStatsState.objects.select_for_update().get(experiment=experiment)
        if state.rolled_through is not None and state.rolled_through >= through:
            return 0
        with connection.cursor() as cursor:
            rolled = _roll_batch(cursor, experiment.pk, state.rolled_through, through)
        _count_exposures(experiment.pk)
        _store_trace_metrics(experiment, through)
        state.rolled_through = through
        state.save(update_fields=["rolled_through", "updated_at"])
    if rolled:
        increment("experiment_stats_rolled_results_total", rolled)
    logger.info("experiment %s: rolled up %d results through %s", experiment.key, rolled, through.isoformat())
    return rolled


def experiment_stats_rollup(*, now: datetime | None = None) -> int:
    """Rolls up every experiment that may have new results; returns the number of results rolled."""
    now = now or timezone.now()
    rolled = 0
    # Live experiments, plus finished ones whose last results may not be rolled up yet.
    candidates = Experiment.objects.filter(
        Q(status__in=[ExperimentStatus.RUNNING, ExperimentStatus.PAUSED])
        | Q(status=ExperimentStatus.COMPLETED, stats_state__isnull=True)
        | Q(status=ExperimentStatus.COMPLETED, stats_state__rolled_through__isnull=True)
        | Q(status=ExperimentStatus.COMPLETED, stats_state__rolled_through__lt=F("stopped_at"))
    ).distinct()
    for experiment in candidates.iterator():
        rolled += experiment_stats_catch_up(experiment=experiment, now=now)
    return rolled
