"""The platform's own job: the heartbeat that proves beat and a worker run (read by /readyz)."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

from agentplatform.probes import HEARTBEAT_CACHE_KEY
from agentplatform.scheduling.registry import Every, register_job

logger = logging.getLogger(__name__)


def heartbeat_record() -> float:
    """Records the time in the shared cache: a worker ran what beat sent (shown by /readyz)."""
    now = time.time()
    cache.set(HEARTBEAT_CACHE_KEY, now, 24 * 3600)
    logger.info("beat heartbeat received by worker")
    return now


# Untracked (no period): a JobRun row a minute would only be noise. The schedule and task names
# are those every installed database already has.
register_job(
    "platform_heartbeat",
    heartbeat_record,
    schedule=Every(60),
    period=None,
    description="Proves beat and a worker run: /readyz shows the last heartbeat.",
    schedule_name="platform heartbeat",
    task_name="platform.heartbeat",
)
