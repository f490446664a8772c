"""GET /api/v1/prompts/{key}/labels/{label}: served from the per-process snapshot, with a strong ETag."""

from __future__ import annotations

import pytest

from prompts import services

pytestmark = pytest.mark.django_db


def url(key: str = "support", label: str = "production") -> str:
    return f"/api/v1/prompts/{key}/labels/{label}"


@pytest.fixture
def agent_client(user_factory, client_as):
    return client_as(user_factory(role="agent"))


def test_a_label_answers_its_version_with_a_strong_etag(agent_client, support):
    response = agent_client.get(url())
    assert response.status_code == 200
    assert response.json() == {
        "key": "support",
        "label": "production",
        "version": 1,
        "content": "Hello {{name}}, v1.",
        "config": {"model": "m1"},
        "variables": ["name"],
    }
    etag = response["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert response["Content-Type"] == "application/json"


def test_staging_and_latest_are_read_like_any_label(agent_client, support):
    staging = agent_client.get(url(label="staging")).json()
    assert (staging["version"], staging["variables"]) == (2, ["name", "team"])
    latest = agent_client.get(url(label="latest"))
    assert latest.json()["version"] == 3 and latest.json()["label"] == "latest"
    assert latest["ETag"] != agent_client.get(url(label="staging"))["ETag"]


@pytest.mark.parametrize(
    "header",
    ["{etag}", "W/{etag}", '"other", {etag}', "*", '"a",   W/{etag} , "b"'],
    ids=["exact", "weak-form", "list", "star", "list-with-spaces"],
)
def test_if_none_match_with_the_current_etag_is_304_without_a_body(agent_client, support, header):
    etag = agent_client.get(url())["ETag"]
    response = agent_client.get(url(), HTTP_IF_NONE_MATCH=header.format(etag=etag))
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


def test_a_stale_etag_gets_the_new_version(agent_client, support, admin, django_capture_on_commit_callbacks):
    etag = agent_client.get(url())["ETag"]
    with django_capture_on_commit_callbacks(execute=True):
        services.prompt_label_move(actor=admin, prompt=support, label="production", version=2)
    response = agent_client.get(url(), HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["version"] == 2 and response["ETag"] != etag


@pytest.mark.parametrize("path", [url("nothing"), url(label="canary"), url("support", "Not-A-Label")])
def test_unknown_prompt_or_label_is_a_404_envelope(agent_client, support, path):
    response = agent_client.get(path)
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "not_found"


def test_agents_and_analysts_may_read_anonymous_may_not(api_client, user_factory, client_as, support):
    for role in ("agent", "analyst", "operator", "admin"):
        assert client_as(user_factory(role=role)).get(url()).status_code == 200, role
    assert api_client.get(url()).status_code == 401


def test_steady_state_read_makes_no_query(agent_client, support, django_assert_num_queries):
    etag = agent_client.get(url())["ETag"]  # builds the snapshot
    with django_assert_num_queries(0):
        assert agent_client.get(url()).status_code == 200
        assert agent_client.get(url(), HTTP_IF_NONE_MATCH=etag).status_code == 304
        assert agent_client.get(url("nothing")).status_code == 404
