"""Fixed, seeded call-level data sets shared by the statistics tests.

Each data set is a list of calls ``{"variant", "user_id", "day", <metric fields>}`` plus the
experiment's set-up. The unit of analysis is the user, so tests reduce calls to one value per user
(the user's mean; for ``success_rate`` the user's share of successful calls) before comparing with
scipy. Phase-2 tests insert the same calls as ``Result`` rows and expect the same numbers from SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from experiments.stats.analysis import VariantAggregate
from experiments.stats.moments import Moments

# The field each metric reads (success_rate reads the boolean ``success``).
METRIC_FIELDS = {
    "success_rate": "success",
    "quality_score": "quality_score",
    "user_feedback": "user_feedback",
    "response_time_ms": "response_time_ms",
    "tokens": "tokens",
}
HIGHER_IS_BETTER = {
    "success_rate": True,
    "quality_score": True,
    "user_feedback": True,
    "response_time_ms": False,
    "tokens": False,
}


@dataclass
class DataSet:
    name: str
    primary_metric: str
    guardrail_metrics: list[str]
    weights: dict[str, float]
    control: str
    calls: list[dict]
    exposures: dict[str, int] = field(default_factory=dict)
    target_mde: float = 0.05

    @property
    def variant_keys(self) -> list[str]:
        return list(self.weights)

    def per_user_values(self, variant: str, metric: str) -> np.ndarray:
        """One value per user: the mean of the user's calls that carry the metric."""
        column = METRIC_FIELDS[metric]
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for call in self.calls:
            value = call.get(column)
            if call["variant"] != variant or value is None:
                continue
            sums[call["user_id"]] += float(value)
            counts[call["user_id"]] += 1
        return np.array([sums[user] / counts[user] for user in sorted(sums)])

    def per_call_values(self, variant: str, metric: str) -> np.ndarray:
        column = METRIC_FIELDS[metric]
        return np.array([float(c[column]) for c in self.calls if c["variant"] == variant and c.get(column) is not None])

    def aggregates(self) -> list[VariantAggregate]:
        """What the SQL aggregation returns for this data set, computed here from the calls."""
        out = []
        for key in self.variant_keys:
            users = {c["user_id"] for c in self.calls if c["variant"] == key}
            metrics = {}
            for metric in [self.primary_metric, *self.guardrail_metrics]:
                values = self.per_user_values(key, metric)
                if len(values):
                    metrics[metric] = Moments.from_values(values)
            out.append(
                VariantAggregate(
                    key=key,
                    is_control=key == self.control,
                    weight=self.weights[key],
                    exposures=self.exposures.get(key, len(users)),
                    results=sum(1 for c in self.calls if c["variant"] == key),
                    metrics=metrics,
                )
            )
        return out


def _calls_for(
    rng: np.random.Generator,
    variant: str,
    users: int,
    *,
    success: float,
    latency: float,
    quality: float = 0.7,
    calls_per_user: int = 3,
    prefix: str = "",
) -> list[dict]:
    calls = []
    for index in range(users):
        user_id = f"{prefix or variant}-u{index}"
        for call in range(int(rng.integers(1, calls_per_user + 1))):
            calls.append(
                {
                    "variant": variant,
                    "user_id": user_id,
                    "day": call % 3,
                    "success": bool(rng.random() < success),
                    "response_time_ms": float(max(1.0, rng.normal(latency, latency * 0.3))),
                    "quality_score": float(np.clip(rng.normal(quality, 0.15), 0, 1)),
                    "tokens": int(rng.integers(100, 900)),
                    "user_feedback": int(rng.choice([-1, 0, 1], p=[0.1, 0.5, 0.4])),
                }
            )
    return calls


def clear_win() -> DataSet:
    """B lifts the success rate from 50% to 58%, latency unchanged."""
    rng = np.random.default_rng(20261127)
    calls = _calls_for(rng, "control", 1500, success=0.50, latency=800)
    calls += _calls_for(rng, "b", 1500, success=0.58, latency=800)
    return DataSet("clear_win", "success_rate", ["response_time_ms"], {"control": 1, "b": 1}, "control", calls)


def no_difference() -> DataSet:
    """Same quality distribution in both arms, and enough users to detect a 5% change."""
    rng = np.random.default_rng(7)
    calls = _calls_for(rng, "control", 1200, success=0.5, latency=800, quality=0.7)
    calls += _calls_for(rng, "b", 1200, success=0.5, latency=800, quality=0.7)
    return DataSet("no_difference", "quality_score", ["response_time_ms"], {"control": 1, "b": 1}, "control", calls)


def lower_is_better() -> DataSet:
    """B answers 10% faster: a lower response time is the improvement."""
    rng = np.random.default_rng(11)
    calls = _calls_for(rng, "control", 800, success=0.6, latency=1000)
    calls += _calls_for(rng, "b", 800, success=0.6, latency=900)
    return DataSet("lower_is_better", "response_time_ms", ["success_rate"], {"control": 1, "b": 1}, "control", calls)


def slower_treatment() -> DataSet:
    """B answers 10% slower: every treatment loses, so the control is kept (rolled back to)."""
    rng = np.random.default_rng(12)
    calls = _calls_for(rng, "control", 800, success=0.6, latency=900)
    calls += _calls_for(rng, "b", 800, success=0.6, latency=1000)
    return DataSet("slower_treatment", "response_time_ms", [], {"control": 1, "b": 1}, "control", calls)


def guardrail_harm() -> DataSet:
    """B wins on success but is 25% slower, a significantly worse guardrail: do not ship it."""
    rng = np.random.default_rng(13)
    calls = _calls_for(rng, "control", 1500, success=0.50, latency=800)
    calls += _calls_for(rng, "b", 1500, success=0.58, latency=1000)
    return DataSet("guardrail_harm", "success_rate", ["response_time_ms"], {"control": 1, "b": 1}, "control", calls)


def three_variants() -> DataSet:
    """Both treatments have raw p-values near 0.03; Holm-adjusted, neither is significant.

    Each treatment alone would be declared a winner at p < 0.05; testing two against one control
    doubles the chance of a false positive, and Holm's adjustment (0.063 here) takes that back.
    """
    rng = np.random.default_rng(79)
    calls = _calls_for(rng, "control", 900, success=0.5, latency=800, quality=0.70)
    calls += _calls_for(rng, "b", 900, success=0.5, latency=800, quality=0.71)
    calls += _calls_for(rng, "c", 900, success=0.5, latency=800, quality=0.71)
    return DataSet(
        "three_variants", "quality_score", [], {"control": 1, "b": 1, "c": 1}, "control", calls, target_mde=0.01
    )


def many_calls_per_user() -> DataSet:
    """Per call B looks far better; per user it does not.

    Twenty heavy users in B make 50 always-successful calls each; everyone else makes one call
    with a 50% success rate in both arms. Counting calls, B's success rate is ~92%; counting users,
    it is ~55%, and with 200 users per arm that is no evidence at all.
    """
    rng = np.random.default_rng(5)
    calls = []
    for variant in ("control", "b"):
        for index in range(200):
            heavy = variant == "b" and index < 20
            for call in range(50 if heavy else 1):
                calls.append(
                    {
                        "variant": variant,
                        "user_id": f"{variant}-u{index}",
                        "day": call % 2,
                        "success": True if heavy else bool(rng.random() < 0.5),
                        "response_time_ms": float(rng.normal(800, 200)),
                        "quality_score": None,
                        "tokens": None,
                        "user_feedback": None,
                    }
                )
    return DataSet("many_calls_per_user", "success_rate", [], {"control": 1, "b": 1}, "control", calls)


def known_srm() -> DataSet:
    """A 50/50 split that exposed 5,000 and 5,400 users: chi-square p is about 9e-5."""
    data = clear_win()
    data.name = "known_srm"
    data.exposures = {"control": 5000, "b": 5400}
    return data


ALL = [clear_win, no_difference, lower_is_better, slower_treatment, guardrail_harm, three_variants,
       many_calls_per_user, known_srm]  # fmt: skip
