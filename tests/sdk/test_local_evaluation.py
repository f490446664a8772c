"""The SDK answers from memory what ``POST /prompts/resolve`` answers, and reports its exposures once.

Against a live platform: two running experiments sharing the ``support`` namespace (30 % with
weights 1:2:3, 45 % with 1:1), a paused one holding another 10 % of it, a production label on
``support``, and a running experiment covering 80 % of ``sales`` (with no production label).
"""

from __future__ import annotations

import httpx
import pytest

from tests.sdk.conftest import experiment_start, two_variants

pytestmark = [pytest.mark.django_db(transaction=True)]

USERS = [f"user-{i}" for i in range(10_000)]


@pytest.fixture
def experiments(user_factory, admin):
    from experiments.services import lifecycle
    from prompts import services as prompts

    operator = user_factory(role="operator")
    support = prompts.prompt_create(actor=admin, key="support")
    prompts.prompt_version_create(
        actor=admin, prompt=support, content="Production support text for {{name}}.", labels=["production"]
    )
    experiment_start(
        actor=operator,
        key="support-three",
        prompt_type="support",
        user_percentage=30,
        variants=[
            {"key": "a", "content": "A for {{name}}", "weight": 1, "is_control": True},
            {"key": "b", "content": "B for {{name}}", "weight": 2},
            {"key": "c", "content": "C for {{name}}", "weight": 3},
        ],
    )
    paused = experiment_start(
        actor=operator, key="support-paused", prompt_type="support", user_percentage=10, variants=two_variants("p")
    )
    lifecycle.experiment_pause(actor=operator, experiment=paused)
    experiment_start(
        actor=operator, key="support-two", prompt_type="support", user_percentage=45, variants=two_variants("support")
    )
    experiment_start(
        actor=operator, key="sales-most", prompt_type="sales", user_percentage=80, variants=two_variants("sales")
    )
    return ("support-three", "support-two", "sales-most")


def remote(http: httpx.Client, prompt_type: str, user_id: str) -> dict:
    response = http.post(
        "/api/v1/prompts/resolve",
        json={
            "user_id": user_id,
            "prompt_type": prompt_type,
            "default_prompt": "Default.",
            "variables": {"name": "Ada"},
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_local_assignment_equals_resolve_for_10000_users(platform, agent_api_key, experiments, make_client):
    ops = make_client()
    assert ops.health()["payload"] == "fresh"
    http = httpx.Client(base_url=platform.url, headers={"Authorization": f"Api-Key {agent_api_key}"}, timeout=30)
    seen_experiments = set()
    sources = set()
    for prompt_type in ("support", "sales"):
        for user in USERS:
            local = ops.prompt(prompt_type, user_id=user, variables={"name": "Ada"}, default="Default.")
            answer = remote(http, prompt_type, user)
            assert (local.experiment, local.variant) == (answer["experiment"], answer["variant"]), user
            assert (local.content, local.compiled, local.source) == (
                answer["content"],
                answer["compiled"],
                answer["source"],
            ), user
            served = answer["prompt"] or {}
            assert (local.version, local.label, dict(local.config)) == (
                served.get("version"),
                served.get("label"),
                served.get("config", {}),
            ), user
            seen_experiments.add(local.experiment)
            sources.add(local.source)
    # Every running experiment was met, users outside them too (label and default), never the paused one.
    assert seen_experiments == {*experiments, None}
    assert sources == {"experiment", "label", "default"}


def test_exposures_of_local_evaluation_are_stored_once_per_user_and_experiment(experiments, make_client):
    from experiments.models import Exposure

    ops = make_client()
    expected = set()
    for _ in range(2):  # returning users expose nothing new
        for user in USERS[:2000]:
            answer = ops.prompt("support", user_id=user)
            if answer.experiment:
                expected.add((answer.experiment, answer.variant, user))
    assert ops.flush(timeout=60)
    stored = set(Exposure.objects.values_list("experiment__key", "variant__key", "user_id"))
    assert stored == expected
    assert ops.health()["delivered"]["exposures"] == len(expected)
    assert ops.health()["rejected"]["exposures"] == 0


def test_the_payload_is_revalidated_with_its_etag(platform, agent_api_key, experiments):
    http = httpx.Client(base_url=platform.url, headers={"Authorization": f"Api-Key {agent_api_key}"}, timeout=30)
    first = http.get("/api/v1/experiments/growthbook-features")
    again = http.get("/api/v1/experiments/growthbook-features", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert first.json()["prompts"]["support"]["production"]["version"] == 1
