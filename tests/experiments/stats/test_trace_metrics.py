"""Experiment metrics from traces: per-user values checked against numpy/scipy, both sources.

The data are generated here, and the expected per-user values are computed from the generated
list (never from the database): sum metrics over every exposed user (0 without traces), mean
metrics over the users with traces; only traces linked to the experiment that did not end before
the user's exposure count.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db.models import F
from django.urls import reverse
from scipy import stats

from accounts.models import Role
from experiments.models import Exposure, Result
from experiments.stats.models import ExperimentVariantMetric
from experiments.stats.rollup import experiment_stats_rollup
from experiments.stats.selectors import experiment_daily_series, experiment_stats
from experiments.stats.trace_metrics import trace_metric_moments
from tests.experiments.conftest import client_for, experiment_body, make_user
from tests.traces.factories import save_traces, trace_row
from traces import partitions
from traces.models import Trace

from .trace_datasets import DAY0, MEAN_METRICS, SUM_METRICS, TRACE_METRICS, generate, make_experiment

pytestmark = pytest.mark.django_db

NOW = DAY0 + timedelta(days=5)


@pytest.fixture(autouse=True)
def _forget_partitions():
    partitions.forget()
    yield
    partitions.forget()


def comparison(result: dict, metric: str) -> dict:
    return next(c for c in result["comparisons"] if c["metric"] == metric)


def test_every_trace_metric_equals_welch_on_independent_per_user_values():
    data = generate()
    result = experiment_stats(experiment=data.experiment, source="raw", now=NOW)
    assert {c["metric"] for c in result["comparisons"]} == set(TRACE_METRICS)
    for metric in TRACE_METRICS:
        control, treatment = data.per_user("a", metric), data.per_user("b", metric)
        welch = stats.ttest_ind(treatment, control, equal_var=False)
        ci = welch.confidence_interval(confidence_level=0.95)
        row = comparison(result, metric)
        diff = treatment.mean() - control.mean()
        assert row["diff"] == pytest.approx(diff, rel=1e-9, abs=1e-12), metric
        assert row["p_value"] == pytest.approx(welch.pvalue, rel=1e-6, abs=1e-12), metric
        assert row["ci_low"] == pytest.approx(ci.low, rel=1e-6, abs=1e-12), metric
        assert row["ci_high"] == pytest.approx(ci.high, rel=1e-6, abs=1e-12), metric
        assert row["lift"] == pytest.approx(diff / control.mean(), rel=1e-9), metric
        se = np.sqrt(control.var(ddof=1) / len(control) + treatment.var(ddof=1) / len(treatment))
        # Lower is better for every trace metric: the chance that the treatment's mean is lower.
        assert row["chance_to_win"] == pytest.approx(stats.norm.cdf(-diff / se), rel=1e-6, abs=1e-12), metric
        for variant, values in (("a", control), ("b", treatment)):
            summary = next(v for v in result["variants"] if v["key"] == variant)["metrics"][metric]
            assert summary["n"] == len(values)
            assert summary["mean"] == pytest.approx(values.mean(), rel=1e-9)
            assert summary["std"] == pytest.approx(values.std(ddof=1), rel=1e-7)


def test_sequential_intervals_of_trace_metrics_follow_the_published_confidence_sequence(settings):
    """Waudby-Smith et al. (arXiv:2103.06476) eq. 2.8, computed here from the per-user values."""
    data = generate(key="sequential-costs", sequential=True)
    result = experiment_stats(experiment=data.experiment, source="raw", now=NOW)
    alpha, tuning = settings.EXPERIMENT_STATS_ALPHA, settings.EXPERIMENT_STATS_SEQUENTIAL_TUNING
    rho = np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning)
    for metric in TRACE_METRICS:
        control, treatment = data.per_user("a", metric), data.per_user("b", metric)
        diff = treatment.mean() - control.mean()
        se = np.sqrt(control.var(ddof=1) / len(control) + treatment.var(ddof=1) / len(treatment))
        n = len(control) + len(treatment)
        sigma = se * np.sqrt(n)
        half = sigma * np.sqrt(2 * (n * rho**2 + 1) / (n**2 * rho**2) * np.log(np.sqrt(n * rho**2 + 1) / alpha))
        row = comparison(result, metric)
        assert row["ci_low"] == pytest.approx(diff - half, rel=1e-9, abs=1e-12), metric
        assert row["ci_high"] == pytest.approx(diff + half, rel=1e-9, abs=1e-12), metric
        fixed = stats.ttest_ind(treatment, control, equal_var=False).confidence_interval()
        assert row["ci_high"] - row["ci_low"] > fixed.high - fixed.low  # wider than the fixed-horizon interval


def test_sum_metrics_count_users_without_traces_as_zero_and_mean_metrics_leave_them_out():
    data = generate()
    result = experiment_stats(experiment=data.experiment, source="raw", now=NOW)
    for variant in result["variants"]:
        exposed = sum(1 for key, _seen in data.exposed.values() if key == variant["key"])
        with_traces = sum(
            1 for user, (key, _seen) in data.exposed.items() if key == variant["key"] and data.counted.get(user)
        )
        assert 0 < with_traces < exposed  # the data hold both kinds of user
        assert variant["exposures"] == exposed
        for metric in SUM_METRICS:
            assert variant["metrics"][metric]["n"] == exposed
        for metric in MEAN_METRICS:
            assert variant["metrics"][metric]["n"] == with_traces


def test_traces_before_exposure_of_other_experiments_or_unlinked_are_not_counted():
    data = generate(users_per_variant=20)
    moments = trace_metric_moments(experiment_id=data.experiment.pk)
    for key, variant in data.variants.items():
        # Every excluded trace costs at least 3 and has an error: any leak would move these.
        assert moments[variant.pk]["cost_per_user"].total == pytest.approx(data.per_user(key, "cost_per_user").sum())
        assert moments[variant.pk]["trace_error_rate"].total == pytest.approx(
            data.per_user(key, "trace_error_rate").sum()
        )
        assert moments[variant.pk]["llm_calls_per_user"].total == data.per_user(key, "llm_calls_per_user").sum()


def test_a_trace_that_starts_before_the_exposure_and_ends_after_it_counts():
    experiment, variants = make_experiment("enclosing", primary="cost_per_user", guardrails=["trace_duration_ms"])
    agent = make_user(Role.AGENT, "agent-enclosing")
    seen = DAY0 + timedelta(hours=3)
    for user_id in ("u1", "u2"):
        Exposure.objects.create(experiment=experiment, variant=variants["a"], user_id=user_id, first_seen_at=seen)
    # u1's agent span opens, then resolves the prompt (the exposure), then calls the model.
    save_traces(
        [
            trace_row(agent=agent, user_id="u1", start=seen - timedelta(milliseconds=40),
                      end=seen + timedelta(seconds=2), experiment_id=experiment.pk, cost="0.002"),
            trace_row(agent=agent, user_id="u2", start=seen - timedelta(seconds=5),
                      end=seen - timedelta(seconds=1), experiment_id=experiment.pk, cost="0.5"),
        ]
    )  # fmt: skip
    moments = trace_metric_moments(experiment_id=experiment.pk)[variants["a"].pk]
    assert moments["cost_per_user"].n == 2
    assert moments["cost_per_user"].total == pytest.approx(0.002)
    assert moments["trace_duration_ms"].n == 1  # u2's only trace ended before their exposure


def test_a_cost_guardrail_breach_rolls_back_a_winner_on_the_primary_metric():
    data = generate(
        key="cost-guardrail",
        primary="success_rate",
        guardrails=["cost_per_user"],
        cost_scale={"a": 0.002, "b": 0.02},
        users_per_variant=150,
    )
    rng = np.random.default_rng(11)
    results = []
    successes: dict[str, list[float]] = {"a": [], "b": []}
    for user_id, (key, seen) in sorted(data.exposed.items()):
        rate = 0.5 if key == "a" else 0.8
        outcomes = rng.random(3) < rate
        successes[key].append(float(outcomes.mean()))
        results.extend(
            Result(
                event_id=f"{user_id}-{n}", experiment=data.experiment, variant=data.variants[key], user_id=user_id,
                occurred_at=seen + timedelta(minutes=n + 1), success=bool(outcome),
            )
            for n, outcome in enumerate(outcomes)
        )  # fmt: skip
    Result.objects.bulk_create(results)

    result = experiment_stats(experiment=data.experiment, source="raw", now=NOW)
    primary = comparison(result, "success_rate")
    expected_primary = stats.ttest_ind(successes["b"], successes["a"], equal_var=False)
    assert primary["p_value"] == pytest.approx(expected_primary.pvalue, rel=1e-6, abs=1e-15)
    assert primary["significant"] and primary["diff"] > 0

    cost = comparison(result, "cost_per_user")
    expected_cost = stats.ttest_ind(
        data.per_user("b", "cost_per_user"), data.per_user("a", "cost_per_user"), equal_var=False
    )
    assert cost["p_value"] == pytest.approx(expected_cost.pvalue, rel=1e-6, abs=1e-15)
    assert cost["significant"] and cost["diff"] > 0  # the treatment costs significantly more
    assert result["decision"]["action"] == "ship"
    assert result["decision"]["variant"] == "a"
    assert "significantly worse on guardrail cost_per_user" in result["decision"]["reason"]


def test_the_rollup_stores_trace_metrics_and_agrees_with_raw():
    data = generate(users_per_variant=40)
    experiment_stats_rollup(now=NOW)
    stored = set(ExperimentVariantMetric.objects.filter(experiment=data.experiment).values_list("metric", flat=True))
    assert set(TRACE_METRICS) <= stored
    rollup = experiment_stats(experiment=data.experiment, source="rollup", now=NOW)
    raw = experiment_stats(experiment=data.experiment, source="raw", now=NOW)
    assert rollup["decision"] == raw["decision"]
    for a, b in zip(rollup["variants"], raw["variants"], strict=True):
        assert a["exposures"] == b["exposures"]
        for metric in TRACE_METRICS:
            assert a["metrics"][metric]["n"] == b["metrics"][metric]["n"]
            assert a["metrics"][metric]["mean"] == pytest.approx(b["metrics"][metric]["mean"], rel=1e-9)
    for a, b in zip(rollup["comparisons"], raw["comparisons"], strict=True):
        assert a["metric"] == b["metric"]
        for name in ("diff", "ci_low", "ci_high", "p_value", "chance_to_win"):
            assert a[name] == pytest.approx(b[name], rel=1e-7, abs=1e-12), (a["metric"], name)


def test_the_rollup_recounts_trace_metrics_as_traces_change():
    data = generate(users_per_variant=10)
    experiment_stats_rollup(now=NOW)
    control = data.variants["a"]
    before = ExperimentVariantMetric.objects.get(experiment=data.experiment, variant=control, metric="cost_per_user")
    user_id = next(u for u, (key, _seen) in data.exposed.items() if key == "a" and data.counted.get(u))
    # More spans of a counted trace arrived (its cost grew), and the user ran a new trace.
    grown = Trace.objects.filter(experiment_id=data.experiment.pk, user_id=user_id, cost__lt=1).first()
    Trace.objects.filter(pk=grown.pk).update(cost=F("cost") + Decimal("0.5"))
    agent = make_user(Role.AGENT, "late-agent")
    late = NOW + timedelta(minutes=5)
    save_traces([trace_row(agent=agent, user_id=user_id, start=late, experiment_id=data.experiment.pk, cost="1.25")])
    experiment_stats_rollup(now=NOW + timedelta(hours=1))
    after = ExperimentVariantMetric.objects.get(experiment=data.experiment, variant=control, metric="cost_per_user")
    assert after.total == pytest.approx(before.total + 1.75)
    assert after.users == before.users


def test_the_rollup_counts_traces_only_up_to_its_watermark():
    data = generate(users_per_variant=10)
    user_id = next(u for u, (key, _seen) in data.exposed.items() if key == "b")
    agent = make_user(Role.AGENT, "future-agent")
    save_traces(
        [
            trace_row(
                agent=agent, user_id=user_id, start=NOW + timedelta(days=1), experiment_id=data.experiment.pk, cost="2"
            )
        ]
    )
    experiment_stats_rollup(now=NOW)
    stored = ExperimentVariantMetric.objects.get(
        experiment=data.experiment, variant=data.variants["b"], metric="cost_per_user"
    )
    assert stored.total == pytest.approx(data.per_user("b", "cost_per_user").sum())


def test_experiments_without_trace_metrics_store_none():
    experiment, _variants = make_experiment("results-only", primary="success_rate", guardrails=["tokens"])
    experiment_stats_rollup(now=NOW)
    assert not ExperimentVariantMetric.objects.filter(experiment=experiment, metric__in=TRACE_METRICS).exists()


def test_the_daily_series_ends_at_the_analysis_mean():
    data = generate(users_per_variant=30)
    result = experiment_stats(experiment=data.experiment, source="raw", now=NOW)
    for metric in ("cost_per_user", "trace_duration_ms"):
        series = experiment_daily_series(experiment=data.experiment, metric=metric)
        for variant in result["variants"]:
            _day, value, users = series[variant["key"]][-1]
            summary = variant["metrics"][metric]
            assert users == summary["n"]
            assert value == pytest.approx(summary["mean"], rel=1e-9)
            assert [point[0] for point in series[variant["key"]]] == sorted(p[0] for p in series[variant["key"]])


def test_the_api_and_the_stats_page_show_trace_metrics_with_their_unit(client):
    data = generate(key="shown", users_per_variant=20)
    analyst = make_user(Role.ANALYST)
    response = client_for(analyst).get(f"/api/v1/experiments/{data.experiment.key}/stats?source=raw")
    assert response.status_code == 200
    body = response.json()
    assert comparison(body, "cost_per_user")["diff"] == pytest.approx(
        data.per_user("b", "cost_per_user").mean() - data.per_user("a", "cost_per_user").mean()
    )
    admin = make_user(Role.ADMIN, "stats-admin")
    client.force_login(admin)
    page = client.get(reverse("admin:experiments_experiment_stats", args=[data.experiment.pk])).content.decode()
    assert "cost_per_user (USD): n / mean / std" in page
    assert "trace_duration_ms (ms): n / mean / std" in page
    control_mean = data.per_user("a", "cost_per_user").mean()
    assert f"{control_mean:.6f}" in page
    assert 'class="cumulative-chart"' in page


def test_an_experiment_can_choose_trace_metrics_through_the_api():
    operator = make_user(Role.OPERATOR)
    body = experiment_body(primary_metric="cost_per_user", guardrail_metrics=["trace_error_rate", "tokens_per_user"])
    response = client_for(operator).post("/api/v1/experiments/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["primary_metric"] == "cost_per_user"
    refused = client_for(operator).post(
        "/api/v1/experiments/", experiment_body(key="bad-metric", primary_metric="cost_per_span"), format="json"
    )
    assert refused.status_code == 400
    assert "primary_metric" in refused.json()["error"]["details"]


def test_the_admin_form_offers_trace_metrics_as_primary_and_guardrail(client):
    client.force_login(make_user(Role.ADMIN, "form-admin"))
    page = client.get(reverse("admin:experiments_experiment_add")).content.decode()
    for metric in TRACE_METRICS:
        assert f'<option value="{metric}"' in page  # primary metric
        assert f'type="checkbox" name="guardrail_metrics" value="{metric}"' in page  # guardrail


def test_users_exposed_after_the_watermark_wait_for_the_next_rollup():
    """A user exposed after the rollup's watermark has no traces counted yet: counting them as 0
    would pull every sum metric down until the next catch-up (found trying it as a user)."""
    data = generate(users_per_variant=10)
    before = trace_metric_moments(experiment_id=data.experiment.pk, through=NOW)
    late = NOW + timedelta(minutes=1)
    for number in range(5):
        Exposure.objects.create(
            experiment=data.experiment, variant=data.variants["b"], user_id=f"late-{number}", first_seen_at=late
        )
    after = trace_metric_moments(experiment_id=data.experiment.pk, through=NOW)
    variant_b = data.variants["b"].pk
    assert after[variant_b]["cost_per_user"] == before[variant_b]["cost_per_user"]
    counted = trace_metric_moments(experiment_id=data.experiment.pk, through=late)
    assert counted[variant_b]["cost_per_user"].n == before[variant_b]["cost_per_user"].n + 5
