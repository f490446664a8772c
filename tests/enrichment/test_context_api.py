"""POST /api/v1/enrichment/context: concurrency, deadline, breakers, fallback, cache, errors."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.utils import timezone

from agentplatform.breakers import get_breaker
from tests.enrichment.conftest import Reply, user_with

URL = "/api/v1/enrichment/context"
ARTICLE = "<html><head><title>Budget passes</title></head><body><article><p>{}</p></article></body></html>"


def page(text: str) -> Reply:
    return Reply(body=ARTICLE.format(" ".join([text] * 20)))


def search_results(*titles: str) -> Reply:
    return Reply(
        body={"results": [{"title": t, "url": f"https://r.example/{i}", "content": t} for i, t in enumerate(titles)]}
    )


@pytest.fixture
def search_up(upstream, settings):
    settings.SEARCH_BASE_URL = upstream.url
    return upstream


def post(client, body):
    return client.post(URL, body, format="json")


def test_parts_run_concurrently_and_one_slow_source_times_out_at_the_deadline(agent_client, upstream, allow):
    allow(upstream)
    upstream.route("/fast", page("The council approved the budget on Monday."))
    upstream.route("/slow", upstream.slow())
    response = post(
        agent_client, {"web": {"urls": [upstream.url + "/fast", upstream.url + "/slow"]}, "deadline_ms": 2500}
    )
    assert response.status_code == 200
    body = response.json()
    # The slow server is still holding its answer (released at teardown): the call did not wait.
    assert not upstream.release.is_set(), body
    assert [s["url"] for s in body["external_snippets"]] == [upstream.url + "/fast"], str(body)
    assert "approved the budget" in body["external_snippets"][0]["text"]
    assert [(e["source"], e["target"], e["code"]) for e in body["errors"]] == [
        ("web", upstream.url + "/slow", "timeout")
    ]
    assert body["errors"][0]["transient"] is True
    assert body["partial"] is True


def test_response_has_every_section_even_when_nothing_is_asked(agent_client):
    body = post(agent_client, {}).json()
    assert body == {
        "external_snippets": [],
        "youtube_insights": [],
        "supadata": {"scrape": [], "map": [], "crawl": []},
        "mcp": [],
        "errors": [],
        "partial": False,
        "elapsed_ms": body["elapsed_ms"],
    }


def test_search_results_become_snippets_naming_the_provider(agent_client, search_up):
    search_up.route("/search", search_results("First", "Second"))
    body = post(agent_client, {"web": {"queries": ["  budget   vote "]}}).json()
    assert [(s["source"], s["title"], s["provider"], s["query"]) for s in body["external_snippets"]] == [
        ("search", "First", "search.primary", "budget vote"),
        ("search", "Second", "search.primary", "budget vote"),
    ]
    assert search_up.received[0].query == {"q": ["budget vote"], "format": ["json"]}


def test_second_identical_call_is_served_from_the_cache_and_marked(agent_client, search_up):
    search_up.route("/search", search_results("Cached"))
    first = post(agent_client, {"web": {"queries": ["budget"]}}).json()
    second = post(agent_client, {"web": {"queries": ["budget"]}}).json()
    assert first["external_snippets"][0]["cached"] is False
    assert second["external_snippets"][0]["cached"] is True
    assert second["external_snippets"][0]["provider"] == "search.primary"
    assert search_up.hits("/search") == 1


def test_fallback_search_provider_serves_when_the_first_fails(agent_client, make_upstream, settings):
    primary, fallback = make_upstream(), make_upstream()
    primary.route("/search", Reply(503, {"error": "overloaded"}))
    fallback.route("/search", search_results("From fallback"))
    settings.SEARCH_BASE_URL, settings.SEARCH_FALLBACK_BASE_URL = primary.url, fallback.url
    body = post(agent_client, {"web": {"queries": ["budget"]}}).json()
    assert body["errors"] == []
    assert [(s["title"], s["provider"]) for s in body["external_snippets"]] == [("From fallback", "search.fallback")]


def test_open_breaker_fails_fast_and_recovers_after_its_timeout(agent_client, search_up, settings):
    settings.CIRCUIT_BREAKERS = {
        **settings.CIRCUIT_BREAKERS,
        "enrichment.search.primary": {"fail_max": 2, "reset_timeout": 30},
    }
    search_up.route("/search", Reply(500, {"error": "boom"}))
    for query in ("a", "b"):
        assert post(agent_client, {"web": {"queries": [query]}}).json()["errors"][0]["code"] == "upstream_unavailable"
    assert search_up.hits("/search") == 2

    body = post(agent_client, {"web": {"queries": ["c"]}}).json()
    assert body["errors"][0]["code"] == "unavailable"
    assert body["errors"][0]["transient"] is True
    assert search_up.hits("/search") == 2  # refused without a request

    search_up.route("/search", search_results("Back"))
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=True):
        body = post(agent_client, {"web": {"queries": ["d"]}}).json()
    assert [s["title"] for s in body["external_snippets"]] == ["Back"]
    assert get_breaker("enrichment.search.primary").state == "closed"


def test_upstream_429_reports_retry_after_and_holds_the_breaker_open(agent_client, search_up):
    search_up.route("/search", Reply(429, {"error": "limit"}, headers={"Retry-After": "120"}))
    first = post(agent_client, {"web": {"queries": ["a"]}}).json()["errors"][0]
    assert (first["code"], first["transient"], first["retry_after"]) == ("rate_limited", True, 120)
    second = post(agent_client, {"web": {"queries": ["b"]}}).json()["errors"][0]
    assert second["code"] == "unavailable"
    assert 100 <= second["retry_after"] <= 120
    assert search_up.hits("/search") == 1


def test_permanent_errors_do_not_open_the_breaker(agent_client, upstream, allow, settings):
    settings.CIRCUIT_BREAKERS = {**settings.CIRCUIT_BREAKERS, "enrichment.web": {"fail_max": 1}}
    allow(upstream)
    urls = [f"{upstream.url}/missing-{i}" for i in range(3)]
    body = post(agent_client, {"web": {"urls": urls}}).json()
    assert [(e["code"], e["transient"]) for e in body["errors"]] == [("not_found", False)] * 3
    assert get_breaker("enrichment.web").state == "closed"


def test_forbidden_targets_are_reported_without_any_request(agent_client, upstream):
    body = post(
        agent_client,
        {"web": {"urls": ["http://169.254.169.254/latest/meta-data/", upstream.url + "/", "ftp://x.example/"]}},
    ).json()
    assert [(e["target"], e["code"], e["transient"]) for e in body["errors"]] == [
        ("http://169.254.169.254/latest/meta-data/", "forbidden_target", False),
        (upstream.url + "/", "forbidden_target", False),
        ("ftp://x.example/", "invalid_target", False),
    ]
    assert upstream.received == []


def test_unconfigured_providers_are_reported_as_such(agent_client):
    body = post(agent_client, {"web": {"queries": ["x"]}, "youtube": {"videos": ["dQw4w9WgXcQ"]}}).json()
    assert [(e["source"], e["code"]) for e in body["errors"]] == [
        ("search", "not_configured"),
        ("youtube", "not_configured"),
    ]


def test_each_list_is_capped(agent_client, settings):
    settings.ENRICHMENT_MAX_TARGETS = 2
    response = post(agent_client, {"web": {"urls": [f"https://a.example/{i}" for i in range(3)]}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "web" in response.json()["error"]["details"]


def test_deadline_above_the_maximum_is_refused(agent_client, settings):
    response = post(agent_client, {"deadline_ms": settings.ENRICHMENT_MAX_DEADLINE_MS + 1})
    assert response.status_code == 400


def test_callers_without_the_permission_are_refused(api_client, db):
    analyst = user_with(username="analyst", role="analyst")  # reads documents, may not fetch context
    api_client.force_authenticate(analyst)
    assert post(api_client, {}).status_code == 403
    api_client.force_authenticate(None)
    assert post(api_client, {}).status_code in (401, 403)


def test_each_call_is_audited_with_sources_and_errors_but_no_content(agent_client, agent, upstream, allow):
    allow(upstream)
    upstream.route("/fast", page("Secret article body text."))
    with mock.patch("enrichment.services.audit_log") as audit_log:
        post(agent_client, {"web": {"urls": [upstream.url + "/fast", "http://10.0.0.1/"]}})
    kwargs = audit_log.call_args.kwargs
    assert kwargs["actor"] == agent
    assert kwargs["action"] == "enrichment.context_fetched"
    assert kwargs["details"]["requested"] == {"web": 2}
    assert kwargs["details"]["served_by"] == {"web": 1}
    assert kwargs["details"]["errors"] == [{"source": "web", "target": "http://10.0.0.1/", "code": "forbidden_target"}]
    assert "Secret article" not in repr(kwargs)


def test_outbound_requests_carry_the_request_id(agent_client, search_up):
    search_up.route("/search", search_results("x"))
    post_response = agent_client.post(URL, {"web": {"queries": ["q"]}}, format="json", HTTP_X_REQUEST_ID="req-enrich-1")
    assert post_response.status_code == 200
    assert search_up.received[0].headers["x-request-id"] == "req-enrich-1"


def test_agents_authenticate_with_their_api_key(api_client, agent_key):
    response = api_client.post(URL, {}, format="json", **agent_key)
    assert response.status_code == 200
