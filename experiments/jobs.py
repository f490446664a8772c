"""Jobs of the experiments app: the exposure flush and the statistics rollup (see docs/jobs.md)."""

from __future__ import annotations

from django.conf import settings

from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import Every, register_job
from experiments.services.exposures import exposures_flush
from experiments.stats.rollup import experiment_stats_rollup

# Untracked (no period): it runs every few seconds, where a JobRun row per tick would be noise.
# The schedule and task names are those every installed database already has.
register_job(
    "exposures_flush",
    exposures_flush,
    schedule=Every(settings.EXPERIMENTS_EXPOSURE_FLUSH_SECONDS),
    period=None,
    description="Moves exposures buffered in Redis by prompt resolves into the database.",
    schedule_name="experiments exposure flush",
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
