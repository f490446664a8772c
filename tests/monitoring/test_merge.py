"""Two processes add into the same Redis histogram; the merged percentiles are right."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
from django.conf import settings

from monitoring.selectors import operation_summary
from monitoring.sketch import RELATIVE_ERROR, exact_quantile
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not settings.REDIS_URL, reason="the shared histogram lives in Redis"),
]

WRITER = """
import os, sys, django
os.environ["DJANGO_SETTINGS_MODULE"] = "agentplatform.settings_test"
django.setup()
import numpy as np
from monitoring.recorder import recorder
seed, at = int(sys.argv[1]), float(sys.argv[2])
values = np.random.default_rng(seed).lognormal(mean=3.0 + seed, sigma=1.0, size=20_000)
for position, value in enumerate(values):
    recorder.observe("shared.op", float(value), success=position % 10 != 0, at=at)
    if position % 5000 == 0:
        recorder.flush()
recorder.flush()
"""


def _values(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(mean=3.0 + seed, sigma=1.0, size=20_000)


def test_two_processes_writing_the_same_minute_merge_exactly(settings):
    settings.MONITORING_STORE = "redis"
    at = datetime.now(UTC).replace(second=5, microsecond=0)
    env = {"REDIS_URL": settings.REDIS_URL, "MONITORING_STORE": "redis"}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "_AGENTPLATFORM", "CELERY_"))}
    base.update(env)
    writers = [  # both at once: their flushes interleave on the same hash
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(seed), str(at.timestamp())],
            cwd=ROOT,
            env=base,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr[-2000:]

    summary = operation_summary(operation="shared.op", since=at.replace(second=0), until=at.replace(second=59), now=at)

    everything = sorted(np.concatenate([_values(0), _values(1)]).tolist())
    assert (summary["count"], summary["errors"]) == (40_000, 4_000)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = exact_quantile(everything, q)
        assert abs(summary[name] - exact) <= RELATIVE_ERROR * exact + 0.001, name  # + the 3-decimal rounding
