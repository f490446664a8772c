"""Demo monitoring data for ``make run``: a day of operation histograms, agent runs, a snapshot.

Idempotent: nothing is added when the demo agent runs already exist.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta

from django.utils import timezone

from monitoring.models import AgentRun
from monitoring.recorder import recorder
from monitoring.services import metrics_rollup, system_snapshot

DEMO_OPERATIONS = {"rag.retrieve": (3.0, 0.6), "llm.call": (6.5, 0.5), "tool.search": (4.5, 1.0)}
DEMO_PAIRS = [("support-bot", "refund"), ("support-bot", "triage"), ("research-bot", "summarise")]


def seed(*, stdout) -> None:
    if AgentRun.objects.filter(run_id__startswith="demo-").exists():
        stdout.write("Monitoring demo data already present.")
        return
    rng = random.Random(8)
    now = timezone.now()
    for minutes_ago in range(24 * 60, 0, -5):
        at = (now - timedelta(minutes=minutes_ago)).timestamp()
        for operation, (mu, sigma) in DEMO_OPERATIONS.items():
            for _ in range(20):
                recorder.observe(operation, math.exp(rng.gauss(mu, sigma)), success=rng.random() > 0.02, at=at)
    recorder.flush()
    metrics_rollup(now=now)
    runs = []
    for index in range(300):
        agent, workflow = DEMO_PAIRS[index % len(DEMO_PAIRS)]
        finished = now - timedelta(minutes=index * 4)
        runs.append(
            AgentRun(
                run_id=f"demo-{index}",
                agent=agent,
                workflow=workflow,
                steps=rng.randint(3, 15),
                retry_count=rng.choice([0, 0, 0, 1, 2]),
                no_progress_count=rng.choice([0, 0, 1]),
                critic_score=round(rng.uniform(0.5, 1.0), 2),
                tokens=rng.randint(500, 8000),
                outcome=rng.choices(["success", "failure", "aborted"], weights=[90, 7, 3])[0],
                started_at=finished - timedelta(seconds=rng.randint(5, 120)),
                finished_at=finished,
            )
        )
    AgentRun.objects.bulk_create(runs, ignore_conflicts=True)
    system_snapshot(now=now)
    stdout.write("Monitoring demo data: a day of 3 operations, 300 agent runs, a system snapshot.")
