"""Jobs of the accounts app (see docs/jobs.md)."""

from __future__ import annotations

from accounts.tokens import token_cleanup
from agentplatform.scheduling import periods
from agentplatform.scheduling.registry import Crontab, register_job

register_job(
    "token_cleanup",
    token_cleanup,
    schedule=Crontab(minute="30", hour="3"),
    period=periods.DAY,
    single_flight=True,
    description="Deletes expired refresh tokens and denylist entries.",
)
