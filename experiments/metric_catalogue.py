"""The fixed catalogue of metrics an experiment can be judged on.

Two sources feed it:

- **result metrics** (``source="results"``) name the ``Result`` column they read; the statistics
  take each user's mean of that column (for ``success_rate`` the share of successful calls);
- **trace metrics** (``source="traces"``) are computed from the traces linked to the experiment
  (``traces.Trace.experiment_id``) that did not end before the user's exposure
  (``experiments.stats.trace_metrics``): ``aggregate="sum"`` metrics are per-user totals over
  every exposed user (a user with no traces counts 0), ``aggregate="mean"`` metrics are per-user
  means over the exposed users who have traces.

Each metric says which direction is better; the statistics reduce it to one value per user before
testing, so the catalogue is the one place that maps a metric name to data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Metric:
    field: str  # the Result column holding the per-event value (trace metrics: the Trace column)
    direction: Literal["higher", "lower"]  # which way is better
    label: str = ""
    kind: Literal["binary", "continuous"] = "continuous"
    source: Literal["results", "traces"] = "results"
    # How a user's events become the user's value: their mean, or (trace metrics) their sum.
    aggregate: Literal["mean", "sum"] = "mean"
    unit: str = ""  # shown beside the numbers ("USD", "ms", …); blank for counts and scores

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def from_traces(self) -> bool:
        return self.source == "traces"


METRICS: dict[str, Metric] = {
    "success_rate": Metric(field="success", direction="higher", label="Success rate", kind="binary"),
    "quality_score": Metric(field="quality_score", direction="higher", label="Quality score (0-1)"),
    "user_feedback": Metric(field="user_feedback", direction="higher", label="User feedback (-1, 0, 1)"),
    "response_time_ms": Metric(field="response_time_ms", direction="lower", label="Response time (ms)", unit="ms"),
    "tokens": Metric(field="tokens", direction="lower", label="Tokens"),
    # From traces (docs/statistics.md, "Trace metrics"). Cost is in the price table's currency
    # (ModelPrice.currency, USD by default): keep one currency per installation.
    "cost_per_user": Metric(
        field="cost", direction="lower", label="Cost per user (USD)", source="traces", aggregate="sum", unit="USD"
    ),
    "tokens_per_user": Metric(
        field="input_tokens", direction="lower", label="Tokens per user", source="traces", aggregate="sum"
    ),
    "llm_calls_per_user": Metric(
        field="llm_calls", direction="lower", label="LLM calls per user", source="traces", aggregate="sum"
    ),
    "trace_duration_ms": Metric(
        field="duration_ms", direction="lower", label="Trace duration (ms)", source="traces", unit="ms"
    ),
    "trace_error_rate": Metric(
        field="error_count", direction="lower", label="Trace error rate", kind="binary", source="traces"
    ),
}

# The metrics each source computes, in catalogue order.
RESULT_METRICS: dict[str, Metric] = {name: metric for name, metric in METRICS.items() if not metric.from_traces}
TRACE_METRICS: dict[str, Metric] = {name: metric for name, metric in METRICS.items() if metric.from_traces}

METRIC_NAMES = tuple(METRICS)
METRIC_CHOICES = [(name, metric.label) for name, metric in METRICS.items()]
