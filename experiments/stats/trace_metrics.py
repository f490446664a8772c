"""Experiment metrics from traces: per-user values from the traces linked to an experiment.

**The unit and the population** (docs/statistics.md, "Trace metrics"). The analysis unit is the
user, and the population is the experiment's exposures: each exposed user counts in the variant
they were exposed to (intention to treat), whatever variant a trace names. A user's traces are the
``traces.Trace`` rows with the experiment's id (``Trace.experiment_id``, set at ingest by
``traces.linking``) and the user's id that did **not end before the user's exposure**: a trace
wholly before the exposure cannot have used the variant, while the agent's root span usually starts
a moment before the resolve call that exposed the user and must count.

- Sum metrics (``cost_per_user``, ``tokens_per_user``, ``llm_calls_per_user``): the user's total
  over those traces; a user with none counts 0, so ``n`` is the variant's exposures. Tokens are
  input + output (cached input and reasoning tokens are inside those counts, as the GenAI
  conventions define them); an unpriced trace adds no cost.
- Mean metrics (``trace_duration_ms``, ``trace_error_rate``): the user's mean trace duration, the
  user's share of traces with an error (an error status or an error span); users without traces
  have no value and are left out, so ``n`` is the users with traces.

One SQL statement computes all of them: the inner GROUP BY reduces each exposed user to one value
per metric (a LEFT JOIN keeps users without traces), the outer one each variant to count, sum and
sum of squares (``Moments``), as the result metrics are (``selectors.experiment_aggregates_raw``).
The ``raw`` source runs it at read time; the rollup job runs it at each catch-up and stores the
moments beside the result metrics' (``rollup.py``), so the ``rollup`` source reads only those rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import connection, transaction

from experiments.metric_catalogue import TRACE_METRICS
from experiments.models import Exposure
from traces.models import SpanStatus, Trace

from .moments import Moments
from .sql import use_work_mem

_FLOAT = "DOUBLE PRECISION"


def _per_trace_sql() -> dict[str, str]:
    """Each trace metric's value for one trace ``t`` (what the per-user sums and means add up)."""
    one, zero = f"CAST(1 AS {_FLOAT})", f"CAST(0 AS {_FLOAT})"
    return {
        "cost_per_user": f"CAST(COALESCE(t.cost, 0) AS {_FLOAT})",
        "tokens_per_user": f"CAST(COALESCE(t.input_tokens, 0) + COALESCE(t.output_tokens, 0) AS {_FLOAT})",
        "llm_calls_per_user": f"CAST(COALESCE(t.llm_calls, 0) AS {_FLOAT})",
        "trace_duration_ms": f"CAST(t.duration_ms AS {_FLOAT})",
        "trace_error_rate": (
            f"CASE WHEN t.status = '{SpanStatus.ERROR.value}' OR t.error_count > 0 THEN {one} ELSE {zero} END"
        ),
    }


def _per_user_sql(metric: str) -> str:
    """A trace metric's per-user value over the user's joined traces ``t`` (NULL: no value)."""
    value = _per_trace_sql()[metric]
    if TRACE_METRICS[metric].aggregate == "sum":
        return f"CAST(COALESCE(SUM({value}), 0) AS {_FLOAT})"
    # t.id IS NULL: the LEFT JOIN's row of a user without traces, who has no value.
    return f"AVG(CASE WHEN t.id IS NULL THEN NULL ELSE {value} END)"


def trace_metric_moments(
    *, experiment_id: int, metrics: Iterable[str] | None = None, through: datetime | None = None
) -> dict[int, dict[str, Moments]]:
    """Per variant, the moments of the per-user values of the named trace metrics (all by default).

    ``through``: count only the users exposed and the traces started at or before it (the rollup's
    watermark); a user exposed after it would count with no traces yet, pulling the sums towards 0.
    A mean metric without any user in a variant is absent from that variant's dict.
    """
    wanted = set(TRACE_METRICS if metrics is None else metrics)
    names = [name for name in TRACE_METRICS if name in wanted]
    if not names:
        return {}
    quote = connection.ops.quote_name
    user_values = "".join(f", {_per_user_sql(name)} AS {name}" for name in names)
    moments = "".join(f", COUNT({name}), SUM({name}), SUM({name} * {name})" for name in names)
    params: list = []
    window = exposed = ""
    if through is not None:
        window = " AND t.start_time <= %s"
        exposed = " AND e.first_seen_at <= %s"
        params.append(connection.ops.adapt_datetimefield_value(through))
    params.append(experiment_id)
    if through is not None:
        params.append(connection.ops.adapt_datetimefield_value(through))
    sql = (
        f"SELECT variant_id{moments} FROM ("  # noqa: S608 - identifiers from model metadata and the metric catalogue
        f"SELECT e.variant_id, e.user_id{user_values} FROM {quote(Exposure._meta.db_table)} e "
        f"LEFT JOIN {quote(Trace._meta.db_table)} t ON t.experiment_id = e.experiment_id "
        f"AND t.user_id = e.user_id AND t.end_time >= e.first_seen_at{window} "
        f"WHERE e.experiment_id = %s{exposed} GROUP BY e.variant_id, e.user_id) per_user GROUP BY variant_id"
    )
    out: dict[int, dict[str, Moments]] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        use_work_mem(cursor)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        for row in rows:
            variant_id, values = row[0], row[1:]
            by_metric: dict[str, Moments] = {}
            for index, name in enumerate(names):
                n, total, sum_sq = values[3 * index : 3 * index + 3]
                if n:
                    by_metric[name] = Moments(n=int(n), total=float(total), sum_sq=float(sum_sq))
            out[variant_id] = by_metric
    return out


def trace_metric_user_days_sql(*, experiment_id: int, metric: str) -> tuple[str, list]:
    """SQL of (variant_id, user_id, day, n, total) rows — per exposed user and UTC day of trace start,
    the number of counted traces and the sum of their values — for the cumulative daily chart.

    For a sum metric every exposed user also has a row (0 traces, 0) on their exposure day, so a
    user without traces counts 0 from that day on, as in the analysis.
    """
    quote = connection.ops.quote_name
    exposures, traces = quote(Exposure._meta.db_table), quote(Trace._meta.db_table)
    trace_day, trace_day_params = connection.ops.datetime_cast_date_sql("t.start_time", (), "UTC")
    rows = (
        f"SELECT e.variant_id, e.user_id, {trace_day} AS day, {_per_trace_sql()[metric]} AS value "  # noqa: S608 - identifiers from model metadata and the metric catalogue
        f"FROM {exposures} e JOIN {traces} t ON t.experiment_id = e.experiment_id "
        "AND t.user_id = e.user_id AND t.end_time >= e.first_seen_at WHERE e.experiment_id = %s"
    )
    sql = (
        "SELECT variant_id, user_id, day, COUNT(*) AS n, SUM(value) AS total "  # noqa: S608 - built above
        f"FROM ({rows}) traced GROUP BY variant_id, user_id, day"
    )
    params = [*trace_day_params, experiment_id]
    if TRACE_METRICS[metric].aggregate == "sum":
        exposure_day, exposure_day_params = connection.ops.datetime_cast_date_sql("first_seen_at", (), "UTC")
        sql = (
            "SELECT variant_id, user_id, day, SUM(n) AS n, SUM(total) AS total FROM ("  # noqa: S608 - built above
            f"{sql} UNION ALL SELECT variant_id, user_id, {exposure_day} AS day, 0 AS n, 0 AS total "
            f"FROM {exposures} WHERE experiment_id = %s) both_kinds GROUP BY variant_id, user_id, day"
        )
        params += [*exposure_day_params, experiment_id]
    return sql, params


def experiment_trace_metrics(experiment) -> list[str]:
    """The trace metrics an experiment is judged on (primary or guardrail), in catalogue order."""
    chosen = {experiment.primary_metric, *(experiment.guardrail_metrics or [])}
    return [name for name in TRACE_METRICS if name in chosen]
