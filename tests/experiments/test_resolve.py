"""POST /api/v1/prompts/resolve and prompt_resolve(): assignment, exposures, caching, fallbacks."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import override_settings
from growthbook import GrowthBook

from experiments import snapshot
from experiments.models import Exposure
from experiments.services import lifecycle
from experiments.services.exposures import exposures_buffered, exposures_flush
from experiments.services.resolve import prompt_resolve
from experiments.snapshot import VERSION_CACHE_KEY, get_snapshot

from ..conftest import run_python

pytestmark = pytest.mark.django_db

RESOLVE = "/api/v1/prompts/resolve"


def resolve(client, user_id, prompt_type="support", **extra):
    response = client.post(RESOLVE, {"user_id": user_id, "prompt_type": prompt_type, **extra}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _user_in(experiment, inside=True, prefix="user"):
    from experiments.snapshot import compile_experiment

    compiled = compile_experiment(experiment)
    return next(f"{prefix}-{i}" for i in range(10_000) if compiled.in_slice(f"{prefix}-{i}") is inside)


def test_user_inside_gets_a_variant_and_is_exposed(agent_client, make_experiment):
    experiment = make_experiment(start=True)
    user = _user_in(experiment)
    body = resolve(agent_client, user, default_prompt="default")
    assert body["in_experiment"] is True
    assert body["experiment"] == "greeting-tone"
    assert body["variant"] in {"control", "warm"}
    assert body["reason"] == "assigned"
    exposures_flush()
    exposure = Exposure.objects.get(user_id=user)
    assert exposure.variant.key == body["variant"]


def test_user_outside_gets_the_default(agent_client, make_experiment):
    experiment = make_experiment(start=True)
    user = _user_in(experiment, inside=False)
    body = resolve(agent_client, user, default_prompt="default prompt")
    assert body == {
        "content": "default prompt",
        "in_experiment": False,
        "experiment": None,
        "variant": None,
        "reason": "outside_experiments",
        "source": "default",
        "prompt": None,
    }


def test_no_experiment_returns_null_content_without_default(agent_client):
    body = resolve(agent_client, "u1", prompt_type="nothing-here")
    assert body["content"] is None and body["reason"] == "no_running_experiment"


def test_paused_experiment_users_get_the_default(make_experiment, operator, django_capture_on_commit_callbacks):
    experiment = make_experiment(start=True, user_percentage=100)
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.experiment_pause(actor=operator, experiment=experiment)
    resolution = prompt_resolve(user_id="u1", prompt_type="support", default_prompt="d")
    assert (resolution.content, resolution.reason) == ("d", "experiment_paused")


def test_resolve_is_stable_for_a_user(agent_client, make_experiment):
    make_experiment(start=True, user_percentage=100)
    answers = {resolve(agent_client, "same-user")["variant"] for _ in range(5)}
    assert len(answers) == 1


def test_invalid_request_is_400(agent_client):
    response = agent_client.post(RESOLVE, {"user_id": "", "prompt_type": 3}, format="json")
    assert response.status_code == 400
    assert {"user_id", "prompt_type"} <= set(response.json()["error"]["details"])


def test_mutually_exclusive_experiments_on_one_prompt_type(make_experiment):
    make_experiment(start=True, key="first", user_percentage=40)
    make_experiment(start=True, key="second", user_percentage=60)
    seen = {"first": 0, "second": 0}
    for i in range(4000):
        resolution = prompt_resolve(user_id=f"user-{i}", prompt_type="support")
        assert resolution.in_experiment  # the two slices cover the whole namespace
        seen[resolution.experiment] += 1
    assert 1400 < seen["first"] < 1800 and 2200 < seen["second"] < 2600


def test_steady_state_resolve_of_a_returning_user_makes_no_query(
    agent_client, make_experiment, django_assert_num_queries
):
    experiment = make_experiment(start=True)
    user = _user_in(experiment)
    resolve(agent_client, user)  # warms the snapshot and records the exposure
    with django_assert_num_queries(0):
        body = resolve(agent_client, user)
    assert body["in_experiment"] is True


def test_steady_state_resolve_of_new_users_makes_no_query(agent_client, make_experiment, django_assert_num_queries):
    make_experiment(start=True, user_percentage=100)
    resolve(agent_client, "warm-up")
    with django_assert_num_queries(0):
        for i in range(20):
            assert resolve(agent_client, f"new-user-{i}")["in_experiment"] is True
    assert exposures_buffered() == 21


def test_exposures_are_stored_once_per_user_with_the_earliest_time(make_experiment):
    experiment = make_experiment(start=True, user_percentage=100)
    for _ in range(3):
        prompt_resolve(user_id="repeat", prompt_type="support")
    # A second process buffering the same user again (its own memory of seen users is empty).
    from experiments.services.exposures import exposures_forget_seen

    exposures_forget_seen()
    prompt_resolve(user_id="repeat", prompt_type="support")
    assert exposures_buffered() == 2
    assert exposures_flush() == 2
    assert Exposure.objects.filter(experiment=experiment, user_id="repeat").count() == 1
    assert exposures_buffered() == 0


DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.05, "socket_timeout": 0.05},
    }
}


def test_resolve_with_redis_down_still_answers_and_records_the_exposure(make_experiment):
    experiment = make_experiment(start=True, user_percentage=100)
    with override_settings(CACHES=DEAD_REDIS):
        snapshot.snapshot_reset()
        resolution = prompt_resolve(user_id="while-down", prompt_type="support")
        assert resolution.in_experiment is True
        exposures_flush()
    assert Exposure.objects.filter(experiment=experiment, user_id="while-down").exists()


def test_a_change_reaches_other_processes_after_the_check_interval(make_experiment, operator, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(snapshot.time, "monotonic", lambda: clock[0])
    experiment = make_experiment(start=True, user_percentage=100)
    assert prompt_resolve(user_id="u", prompt_type="support").in_experiment is True
    # Another process stops the experiment: the database changes and the shared version moves on.
    experiment.status = "completed"
    experiment.save(update_fields=["status"])
    cache.set(VERSION_CACHE_KEY, "another-process-version", timeout=None)
    clock[0] += 0.5
    assert prompt_resolve(user_id="u", prompt_type="support").in_experiment is True
    clock[0] += 0.6
    assert prompt_resolve(user_id="u", prompt_type="support").in_experiment is False


def test_assignment_is_the_same_in_a_fresh_process(make_experiment):
    experiment = make_experiment(start=True, user_percentage=70, key="stable")
    compiled = get_snapshot().by_key["stable"]
    users = [f"creator-{i}" for i in range(300)]
    here = [getattr(compiled.assign(u), "key", None) for u in users]
    code = (
        "import json\n"
        "from experiments.assignment import CompiledExperiment, CompiledVariant\n"
        f"c = CompiledExperiment.build(id=1, key='stable', seed={compiled.seed!r}, prompt_type='support', "
        f"namespace_start={compiled.namespace_start!r}, namespace_end={compiled.namespace_end!r}, "
        f"weights={[v.weight for v in experiment.variants.order_by('position')]!r}, "
        f"variants=[CompiledVariant(i, k, k) for i, k in enumerate({[v.key for v in compiled.variants]!r})])\n"
        f"print(json.dumps([getattr(c.assign(u), 'key', None) for u in {users!r}]))\n"
    )
    result = run_python(code, env={"PYTHONHASHSEED": "12345"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == here


# --- GrowthBook features payload -------------------------------------------------------------------


def test_features_payload_round_trips_through_the_growthbook_sdk(agent_client, make_experiment, operator):
    make_experiment(start=True, key="first", user_percentage=30)
    make_experiment(
        start=True,
        key="second",
        user_percentage=45,
        variants=[
            {"key": "a", "content": "A", "weight": 1, "is_control": True},
            {"key": "b", "content": "B", "weight": 2},
            {"key": "c", "content": "C", "weight": 3},
        ],
    )
    make_experiment(start=True, key="other-type", user_percentage=100, target_prompt_type="sales")
    payload = agent_client.get("/api/v1/experiments/growthbook-features").json()
    assert set(payload["features"]) == {"support", "sales"}
    for prompt_type in ("support", "sales"):
        for i in range(3000):
            user = f"creator-{i}"
            ours = prompt_resolve(user_id=user, prompt_type=prompt_type)
            gb = GrowthBook(attributes={"id": user}, features=payload["features"])
            assert gb.get_feature_value(prompt_type, None) == ours.content


def test_features_payload_omits_paused_experiments(make_experiment, operator, django_capture_on_commit_callbacks):
    experiment = make_experiment(start=True)
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.experiment_pause(actor=operator, experiment=experiment)
    assert get_snapshot().features_payload == {"features": {}, "prompts": {}}


def test_features_rule_carries_the_experiment_settings(make_experiment):
    make_experiment(start=True, user_percentage=25)
    rule = get_snapshot().features_payload["features"]["support"]["rules"][0]
    assert rule["key"] == "greeting-tone" and rule["seed"] == "greeting-tone"
    assert rule["hashVersion"] == 2 and rule["coverage"] == 1
    assert rule["namespace"] == ["support", 0.0, 0.25]
    assert rule["weights"] == [0.5, 0.5]
    assert rule["variations"] == ["You are helpful.", "You are warm and helpful."]


LOCAL_MEMORY = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "exp-tests"}}


def test_without_redis_the_exposure_is_buffered_the_same_way(make_experiment):
    experiment = make_experiment(start=True, user_percentage=100)
    with override_settings(CACHES=LOCAL_MEMORY):
        snapshot.snapshot_reset()
        assert prompt_resolve(user_id="embedded", prompt_type="support").in_experiment is True
        assert exposures_flush() == 1  # the buffer is the process's own, whatever the cache
    assert Exposure.objects.filter(experiment=experiment, user_id="embedded").exists()


def test_steady_state_resolve_with_a_real_api_key_makes_no_query(make_experiment, django_assert_num_queries):
    from rest_framework.test import APIClient

    from accounts.services import agent_create

    make_experiment(start=True, user_percentage=100)
    _user, _key, raw_key = agent_create(username="resolver-agent")
    client = APIClient(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    resolve(client, "returning-user")  # warms the key cache, the snapshot and the exposure memory
    with django_assert_num_queries(0):
        assert resolve(client, "returning-user")["in_experiment"] is True


def test_resolve_is_rate_limited_per_caller(agent_client, make_experiment, settings):
    make_experiment(start=True)
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "prompts.resolve": "3/m"}
    codes = [
        agent_client.post(RESOLVE, {"user_id": f"u{i}", "prompt_type": "support"}, format="json").status_code
        for i in range(5)
    ]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]


def test_a_recheck_in_progress_does_not_block_other_threads(make_experiment):
    make_experiment(start=True, user_percentage=100)
    current = get_snapshot()
    snapshot._state.checked_at = float("-inf")  # due for a re-check
    with snapshot._state.lock:  # another thread is re-checking right now
        assert get_snapshot() is current
