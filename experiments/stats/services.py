"""Writes of the statistics that a request triggers: bringing one experiment's rollup up to date.

The rollup itself (``rollup.py``) runs as a scheduled job; a stats page or request calls
``experiment_stats_refresh`` first, then reads through ``selectors.experiment_stats``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from experiments.models import Experiment

from .models import ExperimentStatsState
from .rollup import experiment_stats_catch_up


def experiment_stats_refresh(*, experiment: Experiment, now: datetime | None = None) -> int:
    """Catch the experiment's rollup up when it is staler than allowed; returns the results rolled."""
    now = now or timezone.now()
    rolled_through = (
        ExperimentStatsState.objects.filter(experiment=experiment).values_list("rolled_through", flat=True).first()
    )
    # The rollup always stays the lag behind now; past that, up to the staleness setting is accepted.
    allowed = timedelta(
        seconds=settings.EXPERIMENT_STATS_ROLLUP_LAG_SECONDS + settings.EXPERIMENT_STATS_MAX_STALENESS_SECONDS
    )
    if rolled_through is not None and rolled_through >= now - allowed:
        return 0
    return experiment_stats_catch_up(experiment=experiment, now=now)
