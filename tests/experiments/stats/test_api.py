"""GET /api/v1/experiments/{key}/stats: the contract, permissions and errors."""

from __future__ import annotations

import pytest
import time_machine

from experiments.stats.rollup import experiment_stats_rollup

from . import datasets
from .conftest import DAY0, load_dataset

pytestmark = pytest.mark.django_db

CONTRACT = {
    "experiment", "status", "computed_at", "data_through", "rolled_through", "srm", "variants", "comparisons",
    "power", "decision",
}  # fmt: skip
COMPARISON_FIELDS = {
    "variant", "metric", "diff", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high",
    "p_value", "p_value_adjusted", "chance_to_win", "expected_loss", "significant",
}  # fmt: skip
NOW = DAY0.replace(day=3)


@time_machine.travel(NOW, tick=False)
def test_stats_follow_the_contract(analyst_client):
    load_dataset(datasets.clear_win(), key="tone")
    response = analyst_client.get("/api/v1/experiments/tone/stats")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == CONTRACT
    assert body["experiment"] == "tone"
    assert body["status"] == "running"
    assert set(body["srm"]) == {"p_value", "ok"}
    assert [v["key"] for v in body["variants"]] == ["control", "b"]
    assert set(body["variants"][0]) == {"key", "is_control", "exposures", "results", "metrics"}
    assert set(body["variants"][0]["metrics"]["success_rate"]) == {"n", "mean", "std"}
    assert all(set(c) == COMPARISON_FIELDS for c in body["comparisons"])
    assert set(body["power"]) == {"metric", "mde_abs", "mde_rel", "users_needed"}
    assert body["decision"]["action"] == "ship"
    assert body["decision"]["variant"] == "b"


@time_machine.travel(NOW, tick=False)
def test_raw_source_gives_the_same_decision(analyst_client):
    load_dataset(datasets.lower_is_better(), key="speed")
    experiment_stats_rollup()
    rolled = analyst_client.get("/api/v1/experiments/speed/stats").json()
    raw = analyst_client.get("/api/v1/experiments/speed/stats?source=raw").json()
    assert rolled["decision"] == raw["decision"]
    assert rolled["comparisons"][0]["p_value"] == pytest.approx(raw["comparisons"][0]["p_value"], rel=1e-6)


@time_machine.travel(NOW, tick=False)
def test_sequential_experiment_reports_always_valid_intervals(analyst_client):
    load_dataset(datasets.clear_win(), key="fixed")
    load_dataset(datasets.clear_win(), key="always-valid", sequential=True)
    fixed = analyst_client.get("/api/v1/experiments/fixed/stats").json()["comparisons"][0]
    always_valid = analyst_client.get("/api/v1/experiments/always-valid/stats").json()["comparisons"][0]
    assert always_valid["ci_high"] - always_valid["ci_low"] > fixed["ci_high"] - fixed["ci_low"]


def test_unknown_source_is_a_validation_error(analyst_client):
    load_dataset(datasets.clear_win(), key="tone")
    response = analyst_client.get("/api/v1/experiments/tone/stats?source=guess")
    assert response.status_code == 400
    assert "source" in response.json()["error"]["message"]


def test_unknown_experiment_is_404(analyst_client):
    response = analyst_client.get("/api/v1/experiments/nope/stats")
    assert response.status_code == 404
    assert response.json()["error"]["code"]


def test_agents_cannot_read_stats(agent_client):
    load_dataset(datasets.clear_win(), key="tone")
    assert agent_client.get("/api/v1/experiments/tone/stats").status_code == 403


def test_anonymous_callers_are_refused(api_client):
    assert api_client.get("/api/v1/experiments/tone/stats").status_code in (401, 403)


def test_experiment_without_results_is_invalid_not_an_error(analyst_client):
    data = datasets.clear_win()
    data.calls = []
    load_dataset(data, key="empty")
    body = analyst_client.get("/api/v1/experiments/empty/stats").json()
    assert body["comparisons"] == []
    assert body["variants"][0]["metrics"] == {}
    assert body["decision"]["action"] == "invalid"
