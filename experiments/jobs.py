"""Jobs of the experiments app: the statistics rollup, and the drain of exposures an earlier version
buffered in Redis (see docs/jobs.md)."""

from __future__ import annotations

from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import Every, register_job
from experiments.services.exposures import exposures_drain_redis_list
from experiments.stats.rollup import experiment_stats_rollup

# Exposures are written by each process's own background writer (experiments/services/exposures.py),
# not by a job. This one only empties the Redis list an earlier version buffered them in: no default
# schedule, but the task keeps the name an upgraded installation's beat entry
# (*experiments exposure flush*) still sends, so that entry drains the list instead of failing.
register_job(
    "exposures_drain_legacy_list",
    exposures_drain_redis_list,
    schedule=None,
    period=None,
    description="Moves exposures an earlier version left in its Redis list into the database (upgrades).",
    task_name="experiments.flush_exposures",
)
register_job(
    "experiment_stats_rollup",
    experiment_stats_rollup,
    schedule=Every(15 * 60),
    period=periods.QUARTER_HOUR,
    single_flight=True,
    description="Recomputes per-variant daily aggregates of running experiments.",
)
