"""Resolve with the prompt registry: experiment → label → default, label choice, variables and compiled."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from experiments import snapshot
from experiments.services import lifecycle
from experiments.services.resolve import prompt_resolve
from experiments.snapshot import VERSION_CACHE_KEY
from prompts import services as prompt_services
from prompts.models import Prompt

pytestmark = pytest.mark.django_db

RESOLVE = "/api/v1/prompts/resolve"


def post(client, body, status=200):
    response = client.post(RESOLVE, body, format="json")
    assert response.status_code == status, response.content
    return response.json()


@pytest.fixture
def registry(admin_user, django_capture_on_commit_callbacks):
    """Prompt ``support``: version 1 "Hello {{name}}" under production, version 2 under staging."""
    with django_capture_on_commit_callbacks(execute=True):
        prompt = prompt_services.prompt_create(actor=admin_user, key="support")
        prompt_services.prompt_version_create(
            actor=admin_user,
            prompt=prompt,
            content="Hello {{name}}",
            config={"temperature": 0.1},
            labels=["production"],
        )
        prompt_services.prompt_version_create(
            actor=admin_user, prompt=prompt, content="Staging {{name}}", labels=["staging"]
        )
    return prompt


def _user(experiment, inside: bool) -> str:
    from experiments.snapshot import compile_experiment

    compiled = compile_experiment(experiment)
    return next(f"user-{i}" for i in range(10_000) if compiled.in_slice(f"user-{i}") is inside)


def test_outside_any_experiment_the_production_version_is_served(agent_client, registry):
    body = post(agent_client, {"user_id": "u1", "prompt_type": "support", "default_prompt": "fallback"})
    assert body == {
        "content": "Hello {{name}}",
        "in_experiment": False,
        "experiment": None,
        "variant": None,
        "reason": "no_running_experiment",
        "source": "label",
        "prompt": {
            "key": "support",
            "version": 1,
            "label": "production",
            "content": "Hello {{name}}",
            "config": {"temperature": 0.1},
        },
    }


def test_another_label_or_latest_may_be_asked_for(agent_client, registry):
    staging = post(agent_client, {"user_id": "u1", "prompt_type": "support", "label": "staging"})
    assert (staging["content"], staging["prompt"]["version"], staging["prompt"]["label"]) == (
        "Staging {{name}}",
        2,
        "staging",
    )
    latest = post(agent_client, {"user_id": "u1", "prompt_type": "support", "label": "latest"})
    assert latest["prompt"]["version"] == 2 and latest["source"] == "label"


def test_a_missing_label_falls_back_to_the_default(agent_client, registry):
    body = post(agent_client, {"user_id": "u1", "prompt_type": "support", "label": "canary", "default_prompt": "d"})
    assert (body["content"], body["source"], body["prompt"]) == ("d", "default", None)


def test_the_users_experiment_variant_wins_over_the_label(agent_client, registry, make_experiment):
    experiment = make_experiment(start=True, user_percentage=50)
    inside, outside = _user(experiment, True), _user(experiment, False)
    assigned = post(agent_client, {"user_id": inside, "prompt_type": "support", "default_prompt": "d"})
    assert assigned["source"] == "experiment" and assigned["in_experiment"] is True
    variant = experiment.variants.get(key=assigned["variant"])
    assert assigned["prompt"] == {
        "key": "support",
        "version": variant.prompt_version.version,
        "label": None,
        "content": variant.content,
        "config": {},
    }
    assert assigned["content"] == variant.prompt_version.content
    other = post(agent_client, {"user_id": outside, "prompt_type": "support", "default_prompt": "d"})
    assert (other["source"], other["reason"], other["prompt"]["version"]) == ("label", "outside_experiments", 1)


def test_users_of_a_paused_experiment_get_the_label(
    registry, make_experiment, operator, django_capture_on_commit_callbacks
):
    experiment = make_experiment(start=True, user_percentage=100)
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.experiment_pause(actor=operator, experiment=experiment)
    resolution = prompt_resolve(user_id="u1", prompt_type="support", default_prompt="d")
    assert (resolution.reason, resolution.source, resolution.content) == (
        "experiment_paused",
        "label",
        "Hello {{name}}",
    )


def test_variables_fill_the_placeholders_in_compiled(agent_client, registry):
    body = post(agent_client, {"user_id": "u1", "prompt_type": "support", "variables": {"name": "Ada", "extra": 1}})
    assert body["compiled"] == "Hello Ada" and body["content"] == "Hello {{name}}"
    assert "compiled" not in post(agent_client, {"user_id": "u1", "prompt_type": "support"})


def test_variables_compile_the_default_prompt_too(agent_client):
    body = post(
        agent_client, {"user_id": "u", "prompt_type": "none", "default_prompt": "Hi {{x}}", "variables": {"x": 2}}
    )
    assert (body["source"], body["compiled"]) == ("default", "Hi 2")
    assert post(agent_client, {"user_id": "u", "prompt_type": "none", "variables": {}})["compiled"] is None


def test_a_missing_variable_is_a_400_naming_it(agent_client, registry):
    body = post(agent_client, {"user_id": "u1", "prompt_type": "support", "variables": {"other": "x"}}, status=400)
    assert body["error"]["code"] == "validation_error"
    assert "name" in body["error"]["message"]
    assert body["error"]["details"] == {"variables": ["Missing: name."]}


def test_a_missing_variable_in_a_variant_records_no_exposure(agent_client, make_experiment):
    from experiments.services.exposures import exposures_buffered

    make_experiment(
        start=True,
        user_percentage=100,
        variants=[
            {"key": "control", "content": "C {{who}}", "is_control": True},
            {"key": "b", "content": "B {{who}}"},
        ],
    )
    post(agent_client, {"user_id": "u1", "prompt_type": "support", "variables": {}}, status=400)
    assert exposures_buffered() == 0
    assert post(agent_client, {"user_id": "u1", "prompt_type": "support", "variables": {"who": "me"}})["compiled"] in {
        "C me",
        "B me",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("label", "Not A Label"),
        ("label", 5),
        ("variables", ["a"]),
        ("variables", {"a": {"nested": 1}}),
        ("variables", {"a": "x" * 20_001}),
        ("variables", {str(i): i for i in range(101)}),
        ("variables", {"a": "nul\x00"}),
    ],
)
def test_bad_label_or_variables_are_refused(agent_client, field, value):
    body = post(agent_client, {"user_id": "u1", "prompt_type": "support", field: value}, status=400)
    assert field in body["error"]["details"]


def test_steady_state_label_resolve_makes_no_query(agent_client, registry, django_assert_num_queries):
    post(agent_client, {"user_id": "warm", "prompt_type": "support"})
    with django_assert_num_queries(0):
        for i in range(10):
            body = post(agent_client, {"user_id": f"u{i}", "prompt_type": "support", "variables": {"name": "n"}})
            assert body["compiled"] == "Hello n"


def test_a_label_move_reaches_other_processes_after_the_check_interval(registry, admin_user, monkeypatch, settings):
    interval = settings.EXPERIMENTS_SNAPSHOT_CHECK_SECONDS
    clock = [1000.0]
    monkeypatch.setattr(snapshot.time, "monotonic", lambda: clock[0])
    assert prompt_resolve(user_id="u", prompt_type="support").prompt["version"] == 1
    # Another process moves production: the database changes and the shared version moves on.
    prompt_services.prompt_label_move(actor=admin_user, prompt=registry, label="production", version=2)
    cache.set(VERSION_CACHE_KEY, "another-process-version", timeout=None)
    clock[0] += interval / 2
    assert prompt_resolve(user_id="u", prompt_type="support").prompt["version"] == 1
    clock[0] += interval
    assert prompt_resolve(user_id="u", prompt_type="support").prompt["version"] == 2


def test_a_new_version_is_latest_after_it_commits(registry, admin_user, django_capture_on_commit_callbacks):
    assert prompt_resolve(user_id="u", prompt_type="support", label="latest").prompt["version"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        prompt_services.prompt_version_create(actor=admin_user, prompt=Prompt.objects.get(key="support"), content="v3")
    assert prompt_resolve(user_id="u", prompt_type="support", label="latest").prompt["version"] == 3
