"""Generated traces for the trace-metric tests: exposed users, the traces that count and those that
must not, and the expected per-user values computed from the generated list (never the database)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from accounts.models import Role
from experiments.models import Experiment, ExperimentStatus, Exposure, Variant
from tests.experiments.conftest import make_user
from tests.traces.factories import save_traces, trace_row

DAY0 = datetime(2026, 11, 2, tzinfo=UTC)
SUM_METRICS = ("cost_per_user", "tokens_per_user", "llm_calls_per_user")
MEAN_METRICS = ("trace_duration_ms", "trace_error_rate")
TRACE_METRICS = SUM_METRICS + MEAN_METRICS


@dataclass
class Generated:
    experiment: Experiment
    variants: dict[str, Variant]
    exposed: dict[str, tuple[str, datetime]]  # user -> (variant key, first seen)
    counted: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))  # user -> counted traces

    def per_user(self, variant: str, metric: str) -> np.ndarray:
        """The expected per-user values of one variant, computed from what was generated."""
        values = []
        for user_id, (key, _seen) in sorted(self.exposed.items()):
            if key != variant:
                continue
            traces = self.counted.get(user_id, [])
            if metric in SUM_METRICS:
                column = {"cost_per_user": "cost", "tokens_per_user": "tokens", "llm_calls_per_user": "llm_calls"}
                values.append(sum(t[column[metric]] for t in traces))
            elif traces:
                column = "duration_ms" if metric == "trace_duration_ms" else "errored"
                values.append(float(np.mean([t[column] for t in traces])))
        return np.array(values, dtype=float)


def make_experiment(key: str, *, primary: str, guardrails: list[str], sequential: bool = False) -> tuple:
    experiment = Experiment.objects.create(
        key=key,
        name=key,
        target_prompt_type="support",
        primary_metric=primary,
        guardrail_metrics=guardrails,
        user_percentage=100,
        sequential=sequential,
        status=ExperimentStatus.RUNNING,
        started_at=DAY0,
    )
    variants = {
        name: Variant.objects.create(experiment=experiment, key=name, content=name, is_control=name == "a", position=i)
        for i, name in enumerate(("a", "b"))
    }
    return experiment, variants


def generate(
    *,
    key: str = "trace-metrics",
    primary: str = "cost_per_user",
    guardrails: list[str] | None = None,
    users_per_variant: int = 120,
    cost_scale: dict[str, float] | None = None,
    seed: int = 7,
    sequential: bool = False,
) -> Generated:
    """Exposed users with 0-4 counted traces each, plus traces that must not count."""
    guardrails = list(guardrails if guardrails is not None else [m for m in TRACE_METRICS if m != primary])
    experiment, variants = make_experiment(key, primary=primary, guardrails=guardrails, sequential=sequential)
    other, other_variants = make_experiment(f"{key}-other", primary="cost_per_user", guardrails=[])
    agent = make_user(Role.AGENT, f"agent-{key}")
    rng = np.random.default_rng(seed)
    cost_scale = cost_scale or {"a": 0.004, "b": 0.005}
    data = Generated(experiment=experiment, variants=variants, exposed={})
    rows, exposures = [], []
    for variant in ("a", "b"):
        for index in range(users_per_variant):
            user_id = f"{variant}-user-{index}"
            seen = DAY0 + timedelta(hours=int(rng.integers(0, 48)), seconds=int(rng.integers(0, 3600)))
            data.exposed[user_id] = (variant, seen)
            exposures.append(
                Exposure(experiment=experiment, variant=variants[variant], user_id=user_id, first_seen_at=seen)
            )
            for _ in range(int(rng.integers(0, 5))):  # some users have no traces at all
                start = seen + timedelta(minutes=int(rng.integers(1, 3000)))
                duration = float(rng.gamma(2.0, 800.0))
                cost = Decimal(str(round(float(rng.exponential(cost_scale[variant])), 10)))
                input_tokens, output_tokens = int(rng.integers(50, 3000)), int(rng.integers(10, 800))
                llm_calls = int(rng.integers(1, 6))
                errored = bool(rng.random() < (0.08 if variant == "a" else 0.12))
                end = start + timedelta(milliseconds=duration)
                rows.append(
                    trace_row(
                        agent=agent, user_id=user_id, start=start, end=end, experiment_id=experiment.pk,
                        variant_id=variants[variant].pk, cost=cost, input_tokens=input_tokens,
                        output_tokens=output_tokens, llm_calls=llm_calls,
                        error_count=1 if errored and rng.random() < 0.5 else 0,
                        status="error" if errored else "ok",
                    )
                )  # fmt: skip
                data.counted[user_id].append(
                    {
                        "cost": float(cost),
                        "tokens": input_tokens + output_tokens,
                        "llm_calls": llm_calls,
                        "duration_ms": rows[-1].duration_ms,
                        "errored": 1.0 if errored else 0.0,
                    }
                )
            # Never counted: a trace that ended before the exposure, one of another experiment,
            # and one with no experiment, each expensive enough to show if it leaked in.
            before = seen - timedelta(hours=2)
            rows.append(trace_row(agent=agent, user_id=user_id, start=before, experiment_id=experiment.pk,
                                  variant_id=variants[variant].pk, cost="9.5", input_tokens=99_999, llm_calls=50,
                                  status="error"))  # fmt: skip
            rows.append(trace_row(agent=agent, user_id=user_id, start=seen + timedelta(hours=1),
                                  experiment_id=other.pk, variant_id=other_variants["a"].pk, cost="7.25",
                                  input_tokens=88_888, llm_calls=40, status="error"))  # fmt: skip
            rows.append(trace_row(agent=agent, user_id=user_id, start=seen + timedelta(hours=2), cost="3",
                                  input_tokens=77_777, llm_calls=30, status="error"))  # fmt: skip
    # Linked to the experiment but for users never exposed: outside the population.
    rows.append(trace_row(agent=agent, user_id="never-exposed", start=DAY0 + timedelta(hours=5),
                          experiment_id=experiment.pk, variant_id=variants["b"].pk, cost="5", llm_calls=9))  # fmt: skip
    Exposure.objects.bulk_create(exposures)
    save_traces(rows)
    return data
