"""POST /api/v1/experiments/exposures: first exposures reported by clients that evaluate locally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from experiments.models import Exposure
from experiments.services import lifecycle
from experiments.snapshot import compile_experiment

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiments/exposures"


@pytest.fixture
def running(make_experiment):
    return make_experiment(start=True, user_percentage=50)


def users_of(experiment, count: int) -> list[tuple[str, str]]:
    """(user, assigned variant key) of the first ``count`` users inside the experiment."""
    compiled = compile_experiment(experiment)
    inside = [f"creator-{i}" for i in range(5000) if compiled.in_slice(f"creator-{i}")]
    return [(user, compiled.assign(user).key) for user in inside[:count]]


def outside_user(experiment) -> str:
    compiled = compile_experiment(experiment)
    return next(f"creator-{i}" for i in range(5000) if not compiled.in_slice(f"creator-{i}"))


def row(user, variant, *, experiment="greeting-tone", at="2026-01-01T10:00:00Z"):
    return {"experiment": experiment, "variant": variant, "user_id": user, "occurred_at": at}


def post(client, rows):
    return client.post(URL, {"exposures": rows}, format="json")


def test_valid_exposures_are_stored_with_their_variant_and_time(agent_client, running):
    users = users_of(running, 3)
    response = post(agent_client, [row(u, v) for u, v in users])
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    stored = {e.user_id: (e.variant.key, e.first_seen_at) for e in Exposure.objects.select_related("variant")}
    assert stored == {u: (v, datetime(2026, 1, 1, 10, tzinfo=UTC)) for u, v in users}


def test_a_retried_batch_is_all_duplicates_and_stores_nothing_twice(agent_client, running):
    rows = [row(u, v) for u, v in users_of(running, 4)]
    assert post(agent_client, rows).json()["accepted"] == 4
    assert post(agent_client, rows).json() == {"accepted": 0, "duplicates": 4, "rejected": []}
    assert Exposure.objects.count() == 4


def test_the_first_exposure_per_user_and_experiment_is_kept(agent_client, running):
    (user, variant), *_ = users_of(running, 1)
    later, earlier = "2026-01-02T10:00:00Z", "2026-01-01T08:00:00Z"
    assert post(agent_client, [row(user, variant, at=later)]).json()["accepted"] == 1
    # A report that arrives later but names an earlier time moves the first exposure back, as
    # the resolve path's writer does; one row either way.
    answer = post(agent_client, [row(user, variant, at=earlier), row(user, variant, at=later)]).json()
    assert answer == {"accepted": 0, "duplicates": 2, "rejected": []}
    exposure = Exposure.objects.get()
    assert exposure.first_seen_at == datetime(2026, 1, 1, 8, tzinfo=UTC)


def test_an_exposure_recorded_by_resolve_makes_the_report_a_duplicate(agent_client, running):
    from experiments.services.exposures import exposures_flush

    (user, variant), *_ = users_of(running, 1)
    resolved = agent_client.post("/api/v1/prompts/resolve", {"user_id": user, "prompt_type": "support"}, format="json")
    assert resolved.json()["variant"] == variant
    exposures_flush()
    now = datetime.now(UTC).isoformat()
    assert post(agent_client, [row(user, variant, at=now)]).json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert Exposure.objects.count() == 1


def test_rows_are_refused_one_by_one_with_a_code(agent_client, running, make_experiment):
    (user, variant), *_ = users_of(running, 1)
    other_variant = next(v.key for v in running.variants.all() if v.key != variant)
    draft = make_experiment(key="still-draft", target_prompt_type="sales")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    rows = [
        row(user, variant),
        row(user, other_variant),
        row(outside_user(running), variant),
        row(user, "no-such-variant"),
        row(user, variant, experiment=draft.key),
        row(user, variant, experiment="no-such-experiment"),
        row(user, variant, at=future),
        row(user, variant, at="2026-01-01T10:00:00"),
        {"experiment": "greeting-tone", "variant": variant},
        "not an object",
    ]
    answer = post(agent_client, rows).json()
    assert answer["accepted"] == 1 and answer["duplicates"] == 0
    codes = {
        r["index"]: {f: [e["code"] for e in errors] for f, errors in r["errors"].items()} for r in answer["rejected"]
    }
    assert codes == {
        1: {"variant": ["wrong_variant"]},
        2: {"user_id": ["outside_experiment"]},
        3: {"variant": ["unknown_variant"]},
        4: {"experiment": ["not_running"]},
        5: {"experiment": ["not_running"]},
        6: {"occurred_at": ["out_of_range"]},
        7: {"occurred_at": ["invalid"]},
        8: {"user_id": ["invalid"]},
        9: {"non_field_errors": ["invalid"]},
    }
    assert Exposure.objects.count() == 1


def test_a_paused_experiment_refuses_exposures(agent_client, running, operator, django_capture_on_commit_callbacks):
    (user, variant), *_ = users_of(running, 1)
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.experiment_pause(actor=operator, experiment=running)
    answer = post(agent_client, [row(user, variant)]).json()
    assert answer["accepted"] == 0 and answer["rejected"][0]["errors"]["experiment"][0]["code"] == "not_running"


@pytest.mark.parametrize("body", [{}, {"exposures": []}, {"exposures": "x"}, [1]])
def test_a_body_that_is_not_a_batch_is_a_400_envelope(agent_client, body):
    response = agent_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"]


def test_more_rows_than_the_limit_are_refused_whole(agent_client, running):
    rows = [row(u, v) for u, v in users_of(running, 3)]
    with override_settings(EXPERIMENTS_EXPOSURES_MAX_ROWS=2):
        response = post(agent_client, rows)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["maximum"] == 2
    assert Exposure.objects.count() == 0


def test_1000_rows_are_accepted(agent_client, make_experiment):
    experiment = make_experiment(start=True, user_percentage=100)
    compiled = compile_experiment(experiment)
    rows = [row(f"u-{i}", compiled.assign(f"u-{i}").key) for i in range(1000)]
    assert post(agent_client, rows).json() == {"accepted": 1000, "duplicates": 0, "rejected": []}


def test_an_analyst_cannot_report_exposures(analyst_client, running):
    (user, variant), *_ = users_of(running, 1)
    assert post(analyst_client, [row(user, variant)]).status_code == 403


def test_the_features_payload_answers_304_to_its_etag_until_something_changes(
    agent_client, running, operator, django_capture_on_commit_callbacks
):
    first = agent_client.get("/api/v1/experiments/growthbook-features")
    etag = first["ETag"]
    assert first.status_code == 200 and etag.startswith('"')
    assert first.json()["features"]["support"]["rules"][0]["key"] == "greeting-tone"
    again = agent_client.get("/api/v1/experiments/growthbook-features", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.experiment_pause(actor=operator, experiment=running)
    changed = agent_client.get("/api/v1/experiments/growthbook-features", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert changed.json()["features"] == {}
