"""Platform-level tasks."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.core.cache import cache

from agentplatform.probes import HEARTBEAT_CACHE_KEY

logger = logging.getLogger(__name__)


@shared_task(name="platform.heartbeat", ignore_result=True)
def heartbeat() -> float:
    """Proves beat and a worker are alive: records the time in the shared cache (shown by /readyz)."""
    now = time.time()
    cache.set(HEARTBEAT_CACHE_KEY, now, 24 * 3600)
    logger.info("beat heartbeat received by worker")
    return now
