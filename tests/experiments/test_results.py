"""POST /api/v1/experiments/{key}/results: idempotent, partially rejecting ingestion."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from experiments.models import Result
from experiments.snapshot import compile_experiment

pytestmark = pytest.mark.django_db


def url(key="greeting-tone"):
    return f"/api/v1/experiments/{key}/results"


@pytest.fixture
def running(make_experiment):
    return make_experiment(start=True, user_percentage=50)


def inside_user(experiment, *, n=0):
    compiled = compile_experiment(experiment)
    users = [f"creator-{i}" for i in range(5000) if compiled.in_slice(f"creator-{i}")]
    user = users[n]
    return user, compiled.assign(user).key


def outside_user(experiment):
    compiled = compile_experiment(experiment)
    return next(f"creator-{i}" for i in range(5000) if not compiled.in_slice(f"creator-{i}"))


def row(event_id, user, variant, **values):
    return {"event_id": event_id, "user_id": user, "variant": variant, "occurred_at": "2026-01-01T10:00:00Z", **values}


def post(client, rows, key="greeting-tone"):
    return client.post(url(key), {"results": rows}, format="json")


def test_valid_rows_are_accepted_and_stored(agent_client, running):
    user, variant = inside_user(running)
    response = post(
        agent_client,
        [
            row("e1", user, variant, success=True, response_time_ms=120.5, tokens=300, quality_score=0.8),
            row("e2", user, variant, user_feedback=-1, model="gpt-x-2026-01"),
        ],
    )
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    stored = Result.objects.get(event_id="e1")
    assert (stored.success, stored.response_time_ms, stored.tokens, stored.quality_score) == (True, 120.5, 300, 0.8)
    assert stored.variant.key == variant and stored.recorded_at is not None
    assert Result.objects.get(event_id="e2").model == "gpt-x-2026-01"


def test_a_retried_batch_counts_duplicates_and_stores_nothing_twice(agent_client, running):
    user, variant = inside_user(running)
    rows = [row("e1", user, variant, success=True), row("e2", user, variant, success=False)]
    post(agent_client, rows)
    response = post(agent_client, [*rows, row("e3", user, variant, success=True)])
    assert response.json() == {"accepted": 1, "duplicates": 2, "rejected": []}
    assert Result.objects.count() == 3


def test_a_repeated_event_id_within_a_batch_is_a_duplicate(agent_client, running):
    user, variant = inside_user(running)
    response = post(agent_client, [row("same", user, variant), row("same", user, variant)])
    assert response.json()["accepted"] == 1 and response.json()["duplicates"] == 1


def _only_error(rejection: dict) -> dict:
    """The one error of a row refused for one reason."""
    [(_, [error])] = rejection["errors"].items()
    return error


def test_rows_are_rejected_individually_with_a_code(agent_client, running):
    user, variant = inside_user(running)
    other_variant = "warm" if variant == "control" else "control"
    rows = [
        row("ok", user, variant, success=True),
        row("r1", user, "no-such-variant"),
        row("r2", user, other_variant),
        row("r3", outside_user(running), variant),
        row("r4", user, variant, quality_score=1.5),
        row("r5", user, variant, response_time_ms=-1),
        row("r6", user, variant, tokens=-3),
        row("r7", user, variant, user_feedback=2),
        row("r8", user, variant, response_time_ms="__HUGE__"),
        row("r9", user, variant, tokens=1.5),
        {"user_id": user, "variant": variant},
        row("r11", user, variant, occurred_at="yesterday"),
        row("r12", user, variant, success="yes"),
        "not an object",
    ]
    # 1e400 is valid JSON that parses to infinity: the kind of non-finite value agents can send.
    raw = json.dumps({"results": rows}).replace('"__HUGE__"', "1e400")
    response = agent_client.post(url(), raw, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    codes = {item["index"]: _only_error(item)["code"] for item in body["rejected"]}
    assert codes == {
        1: "unknown_variant",
        2: "wrong_variant",
        3: "outside_experiment",
        4: "out_of_range",
        5: "out_of_range",
        6: "out_of_range",
        7: "out_of_range",
        8: "out_of_range",
        9: "invalid",
        10: "invalid",
        11: "invalid",
        12: "invalid",
        13: "invalid",
    }
    assert all(_only_error(item)["message"] for item in body["rejected"])
    fields = {item["index"]: next(iter(item["errors"])) for item in body["rejected"]}
    assert fields == {
        1: "variant",
        2: "variant",
        3: "user_id",
        4: "quality_score",
        5: "response_time_ms",
        6: "tokens",
        7: "user_feedback",
        8: "response_time_ms",
        9: "tokens",
        10: "event_id",
        11: "occurred_at",
        12: "success",
        13: "non_field_errors",
    }
    assert Result.objects.count() == 1


def test_a_result_is_accepted_before_its_exposure_is_flushed(agent_client, running):
    user, variant = inside_user(running, n=3)
    response = post(agent_client, [row("early", user, variant, success=True)])
    assert response.json()["accepted"] == 1


def test_unknown_experiment_is_404(agent_client):
    assert post(agent_client, [row("e", "u", "v")], key="nope").status_code == 404


def test_experiment_not_running_is_409(agent_client, make_experiment):
    make_experiment()
    response = post(agent_client, [row("e", "u", "control")])
    assert response.status_code == 409


def test_more_than_1000_rows_is_refused_whole_with_400(agent_client, running):
    user, variant = inside_user(running)
    response = post(agent_client, [row(f"e{i}", user, variant) for i in range(1001)])
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "results", "minimum": 1, "maximum": 1000, "given": 1001}
    assert Result.objects.count() == 0


def test_1000_rows_are_accepted(agent_client, running):
    users = [inside_user(running, n=i) for i in range(50)]
    rows = [row(f"e{i}", *users[i % 50], success=i % 2 == 0) for i in range(1000)]
    response = post(agent_client, rows)
    assert response.json() == {"accepted": 1000, "duplicates": 0, "rejected": []}


def test_empty_batch_is_400(agent_client, running):
    assert post(agent_client, []).status_code == 400


def test_missing_results_key_is_400(agent_client, running):
    assert agent_client.post(url(), {"rows": []}, format="json").status_code == 400


def test_analyst_cannot_write_results(analyst_client, running):
    assert post(analyst_client, [row("e", "u", "control")]).status_code == 403


@override_settings(EXPERIMENTS_RESULTS_MAX_ROWS=2)
def test_row_limit_is_a_setting(agent_client, running):
    user, variant = inside_user(running)
    assert post(agent_client, [row(f"e{i}", user, variant) for i in range(3)]).status_code == 400


def test_the_fast_path_gives_every_row_the_answer_of_the_row_by_row_validator():
    """``_parse_rows`` (fast path first) and ``_parse_row`` agree on the schema-parity corpus of rows."""
    from datetime import UTC, datetime, timedelta

    from experiments.assignment import CompiledExperiment, CompiledVariant
    from experiments.services import results
    from tests.agentplatform.test_schema_parity import corpus

    compiled = CompiledExperiment.build(
        id=7,
        key="k",
        seed="parity",
        prompt_type="support",
        namespace_start=0.0,
        namespace_end=0.5,
        weights=[1, 1],
        variants=[CompiledVariant(id=1, key="control", content=""), CompiledVariant(id=2, key="warm", content="")],
    )
    variant_ids = {"control": 1, "warm": 2}
    inside = [f"creator-{i}" for i in range(200) if compiled.in_slice(f"creator-{i}")]
    outside = next(f"creator-{i}" for i in range(200) if not compiled.in_slice(f"creator-{i}"))
    now = datetime.now(UTC)
    valid = {
        "event_id": "e-1",
        "user_id": inside[0],
        "variant": compiled.assign(inside[0]).key,
        "occurred_at": (now - timedelta(minutes=2)).isoformat(),
        "success": True,
        "response_time_ms": 812.5,
        "tokens": 420,
        "quality_score": 0.75,
        "user_feedback": 1,
        "model": "model-1",
    }
    rows = [row for _, row in corpus(valid)]
    rows += [{**valid, "user_id": user, "variant": key} for user in (*inside[:20], outside) for key in variant_ids]
    rows += [{**valid, "user_id": "crëator-9"}, {**valid, "response_time_ms": 2**60}, {**valid, "occurred_at": None}]
    accepted = rejected = 0
    for row in rows:
        try:
            expected = ("stored", results._parse_row(row, compiled=compiled, variant_ids=variant_ids, now=now))
            accepted += 1
        except results._Rejected as rejection:
            expected = ("rejected", {rejection.field or "non_field_errors": [rejection.code, rejection.message]})
            rejected += 1
        stored, answer = results._parse_rows([row], compiled=compiled, variant_ids=variant_ids, now=now)
        if stored:
            got = ("stored", stored[0])
        else:
            [rejection] = answer.rejected
            [(field, [error])] = rejection.errors.items()
            got = ("rejected", {field: [error["code"], error["message"]]})
        assert got == expected, row
    assert accepted > 20 and rejected > 100  # the corpus holds both answers


def test_a_batch_keeps_the_first_row_of_a_repeated_event_id_whichever_path_checks_it(running):
    from datetime import UTC, datetime

    from experiments.services import results

    compiled = compile_experiment(running)
    variant_ids = {variant.key: variant.id for variant in compiled.variants}
    user, variant = inside_user(running)
    other, other_variant = inside_user(running, n=1)
    # The first row needs the row-by-row check (a non-ASCII model name); the repeat is plain.
    first = row("e1", user, variant, model="modèle")
    repeat = row("e1", other, other_variant)
    stored, answer = results._parse_rows(
        [first, repeat], compiled=compiled, variant_ids=variant_ids, now=datetime.now(UTC)
    )
    assert [(values[0], values[3], values[10]) for values in stored] == [("e1", user, "modèle")]
    assert answer.duplicates == 1
