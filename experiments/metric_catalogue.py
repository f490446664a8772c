"""The fixed catalogue of metrics an experiment can be judged on.

Each metric names the ``Result`` column it reads and which direction is better; the statistics
aggregate that column per user before testing, so the catalogue is the one place that
maps a metric name to data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Metric:
    field: str  # the Result column holding the per-event value
    direction: Literal["higher", "lower"]  # which way is better
    label: str = ""
    kind: Literal["binary", "continuous"] = "continuous"

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


METRICS: dict[str, Metric] = {
    "success_rate": Metric(field="success", direction="higher", label="Success rate", kind="binary"),
    "quality_score": Metric(field="quality_score", direction="higher", label="Quality score (0-1)"),
    "user_feedback": Metric(field="user_feedback", direction="higher", label="User feedback (-1, 0, 1)"),
    "response_time_ms": Metric(field="response_time_ms", direction="lower", label="Response time (ms)"),
    "tokens": Metric(field="tokens", direction="lower", label="Tokens"),
}

METRIC_NAMES = tuple(METRICS)
METRIC_CHOICES = [(name, metric.label) for name, metric in METRICS.items()]
