"""Supadata and YouTube through Supadata, against a fake with the documented shapes."""

from __future__ import annotations

import json

import pytest

from tests.enrichment.conftest import Reply

URL = "/api/v1/enrichment/context"
KEY = "sd_test_key"


@pytest.fixture
def supadata(upstream, settings, allow, make_upstream):
    settings.SUPADATA_BASE_URL = upstream.url + "/v1"
    settings.SUPADATA_API_KEY = KEY
    # The URLs agents ask about must pass the guard: a second loopback "site" stands in for them.
    site = make_upstream()
    allow(site)
    upstream.site = site
    return upstream


def post(client, body):
    response = client.post(URL, body, format="json")
    assert response.status_code == 200
    return response.json()


def test_scrape_returns_the_page_content_and_sends_the_key(agent_client, supadata):
    supadata.route(
        "/v1/web/scrape",
        Reply(
            body={"url": supadata.site.url + "/a", "content": "# Title\n\nBody", "name": "Title", "description": "d"}
        ),
    )
    body = post(agent_client, {"supadata": {"scrape": [supadata.site.url + "/a"]}})
    assert body["supadata"]["scrape"] == [
        {
            "url": supadata.site.url + "/a",
            "title": "Title",
            "text": "# Title\n\nBody",
            "provider": "supadata",
            "cached": False,
        }
    ]
    request = supadata.received[0]
    assert request.headers["x-api-key"] == KEY
    assert request.query == {"url": [supadata.site.url + "/a"]}


def test_map_returns_the_site_urls(agent_client, supadata):
    supadata.route("/v1/web/map", Reply(body={"urls": ["https://s.example/", "https://s.example/about"]}))
    body = post(agent_client, {"supadata": {"map": [supadata.site.url + "/"]}})
    assert body["supadata"]["map"][0]["urls"] == ["https://s.example/", "https://s.example/about"]


def test_crawl_posts_a_job_and_polls_until_completed(agent_client, supadata):
    polls = iter(
        [
            {"status": "scraping", "pages": []},
            {"status": "scraping", "pages": []},
            {"status": "completed", "pages": [{"url": "https://s.example/p1", "content": "one", "name": "P1"}]},
        ]
    )
    supadata.route("/v1/web/crawl", Reply(body={"jobId": "job-123"}), method="POST")
    supadata.route("/v1/web/crawl/job-123", lambda _request: Reply(body=next(polls)))
    body = post(agent_client, {"supadata": {"crawl": [{"url": supadata.site.url + "/", "limit": 5}]}})
    crawl = body["supadata"]["crawl"][0]
    assert (crawl["job_id"], crawl["status"]) == ("job-123", "completed")
    assert crawl["pages"] == [{"url": "https://s.example/p1", "title": "P1", "text": "one"}]
    assert supadata.hits("/v1/web/crawl/job-123") == 3
    started = next(r for r in supadata.received if r.method == "POST")
    assert json.loads(started.body) == {"url": supadata.site.url + "/", "limit": 5}


def test_failed_crawl_job_is_a_permanent_error(agent_client, supadata):
    supadata.route("/v1/web/crawl", Reply(body={"jobId": "job-9"}), method="POST")
    supadata.route("/v1/web/crawl/job-9", Reply(body={"status": "failed"}))
    body = post(agent_client, {"supadata": {"crawl": [{"url": supadata.site.url + "/"}]}})
    assert [(e["source"], e["code"], e["transient"]) for e in body["errors"]] == [
        ("supadata.crawl", "job_failed", False)
    ]


def test_crawl_still_running_at_the_deadline_is_a_timeout(agent_client, supadata, settings):
    settings.SUPADATA_POLL_INTERVAL = 0.05
    supadata.route("/v1/web/crawl", Reply(body={"jobId": "job-slow"}), method="POST")
    supadata.route("/v1/web/crawl/job-slow", Reply(body={"status": "scraping"}))
    body = post(agent_client, {"supadata": {"crawl": [{"url": supadata.site.url + "/"}]}, "deadline_ms": 800})
    assert body["errors"][0]["code"] == "timeout"


def test_crawl_targets_pass_the_ssrf_guard_before_supadata_sees_them(agent_client, supadata):
    body = post(
        agent_client, {"supadata": {"crawl": [{"url": "http://169.254.169.254/"}], "scrape": ["http://10.0.0.7/"]}}
    )
    assert sorted(e["code"] for e in body["errors"]) == ["forbidden_target", "forbidden_target"]
    assert supadata.received == []


def test_transcript_200_is_returned_as_an_insight(agent_client, supadata):
    supadata.route("/v1/transcript", Reply(body={"content": "hello world", "lang": "en", "availableLangs": ["en"]}))
    body = post(agent_client, {"youtube": {"videos": ["https://youtu.be/dQw4w9WgXcQ"]}})
    assert body["youtube_insights"] == [
        {"video": "dQw4w9WgXcQ", "lang": "en", "text": "hello world", "provider": "youtube", "cached": False}
    ]
    assert supadata.received[0].query["url"] == ["https://www.youtube.com/watch?v=dQw4w9WgXcQ"]


def test_transcript_202_is_polled_until_completed(agent_client, supadata):
    supadata.route("/v1/transcript", Reply(202, {"jobId": "tr-1"}))
    polls = iter(
        [{"status": "queued"}, {"status": "active"}, {"status": "completed", "content": "later", "lang": "ko"}]
    )
    supadata.route("/v1/transcript/tr-1", lambda _request: Reply(body=next(polls)))
    body = post(agent_client, {"youtube": {"videos": ["dQw4w9WgXcQ"]}})
    assert [(i["lang"], i["text"]) for i in body["youtube_insights"]] == [("ko", "later")]


def test_transcript_206_means_no_transcript(agent_client, supadata):
    supadata.route(
        "/v1/transcript",
        Reply(206, {"error": "transcript-unavailable", "message": "No transcript", "details": "captions disabled"}),
    )
    body = post(agent_client, {"youtube": {"videos": ["dQw4w9WgXcQ"]}})
    assert [(e["source"], e["code"], e["transient"]) for e in body["errors"]] == [("youtube", "no_transcript", False)]


def test_supadata_error_shape_is_summarised_in_the_error_message(agent_client, supadata):
    supadata.route(
        "/v1/web/scrape",
        Reply(401, {"error": "unauthorized", "message": "Invalid API key", "details": "x", "documentationUrl": "d"}),
    )
    body = post(agent_client, {"supadata": {"scrape": [supadata.site.url + "/"]}})
    error = body["errors"][0]
    assert (error["code"], error["transient"]) == ("upstream_rejected", False)
    assert "unauthorized - Invalid API key" in error["message"]


def test_invalid_video_ids_are_refused_without_a_call(agent_client, supadata):
    body = post(agent_client, {"youtube": {"videos": ["not a video", "https://vimeo.com/1"]}})
    assert [e["code"] for e in body["errors"]] == ["invalid_target", "invalid_target"]
    assert supadata.received == []
