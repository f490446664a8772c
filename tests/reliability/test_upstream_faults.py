"""An upstream provider hangs or errors: enrichment keeps its deadline and reports the part that
failed, the provider's breaker opens after its configured failures, then fails fast (without
reaching the upstream), and recovers once the upstream is healthy; meanwhile unrelated endpoints
of a live server keep answering.

The upstream is a ``ScriptedUpstream`` on loopback (the search provider's base URL): ``hang``
accepts connections and never answers, ``error`` answers 500, ``ok`` answers search results.
Nothing here asserts a duration: only answers, error codes, breaker states and what the upstream
saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from agentplatform import breakers
from tests.experiments.conftest import experiment_body
from tests.reliability.faults import ScriptedUpstream

URL = "/api/v1/enrichment/context"
BREAKER = "enrichment.search.primary"
RESULTS = json.dumps({"results": [{"title": "Back", "url": "https://r.example/1", "content": "Back again"}]}).encode()
# Seconds: bounds of the polling loops below, far above what a healthy run needs.
BOUND = 30.0


@pytest.fixture
def search_upstream(settings):
    """The search provider points at a scripted upstream; no fallback; fresh breakers."""
    upstream = ScriptedUpstream(ok_body=RESULTS, mode="hang")
    settings.SEARCH_BASE_URL = upstream.url
    settings.SEARCH_FALLBACK_BASE_URL = ""
    breakers.reset_registry()
    try:
        yield upstream
    finally:
        upstream.close()
        breakers.flush_transitions()
        breakers.reset_registry()


@pytest.fixture
def agent_api(api_client, agent_key):
    def post(body: dict):
        response = api_client.post(URL, body, format="json", **agent_key)
        assert response.status_code == 200, response.content[:500]
        return response.json()

    return post


def poll(what: str, check: Callable[[], object], *, timeout: float = BOUND):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.parametrize("provider_timeout", [30.0, 0.3], ids=["deadline-first", "provider-timeout-first"])
def test_a_hung_provider_is_answered_by_the_deadline_with_a_timeout_per_part(
    search_upstream, agent_api, settings, provider_timeout
):
    settings.ENRICHMENT_SEARCH_TIMEOUT = provider_timeout
    body = agent_api({"web": {"queries": ["first", "second"]}, "deadline_ms": 1500})
    assert [(e["source"], e["target"], e["code"], e["transient"]) for e in body["errors"]] == [
        ("search", "first", "timeout", True),
        ("search", "second", "timeout", True),
    ]
    assert body["partial"] is True and body["external_snippets"] == []
    assert search_upstream.accepted == 2  # both parts reached the upstream...
    if provider_timeout > 10:
        assert search_upstream.held == 2  # ...which still holds them: the answer did not wait for it


@pytest.mark.parametrize(("mode", "code"), [("hang", "timeout"), ("error", "upstream_unavailable")])
def test_the_breaker_opens_fails_fast_and_recovers_when_the_upstream_is_healthy(
    search_upstream, agent_api, settings, mode, code
):
    settings.ENRICHMENT_SEARCH_TIMEOUT = 0.3
    settings.CIRCUIT_BREAKERS = {**settings.CIRCUIT_BREAKERS, BREAKER: {"fail_max": 3, "reset_timeout": 1}}
    search_upstream.mode = mode
    for number in range(3):
        body = agent_api({"web": {"queries": [f"q{number}"]}, "deadline_ms": 5000})
        assert [e["code"] for e in body["errors"]] == [code]
    assert breakers.get_breaker(BREAKER).state == "open"
    assert search_upstream.accepted == 3

    refused = agent_api({"web": {"queries": ["q-open"]}, "deadline_ms": 5000})
    assert [(e["code"], e["transient"]) for e in refused["errors"]] == [("unavailable", True)]
    assert refused["errors"][0]["retry_after"] >= 1
    assert search_upstream.accepted == 3  # refused without reaching the upstream

    search_upstream.mode = "ok"
    answers: list[dict] = []

    def recovered() -> bool:
        answers.append(agent_api({"web": {"queries": [f"q-retry-{len(answers)}"]}, "deadline_ms": 5000}))
        return bool(answers[-1]["external_snippets"])

    poll("the breaker to let a trial call through after its reset timeout", recovered)
    assert [s["title"] for s in answers[-1]["external_snippets"]] == ["Back"]
    assert answers[-1]["errors"] == []
    assert all([e["code"] for e in a["errors"]] == ["unavailable"] for a in answers[:-1])
    assert breakers.get_breaker(BREAKER).state == "closed"


def test_calls_cut_by_their_deadline_after_seconds_of_silence_open_the_breaker(search_upstream, agent_api, settings):
    # The provider's own timeout is far away (as Supadata's 15 s is beyond the default 8 s deadline):
    # only the deadline ends these calls, after they waited longer than the slow-call threshold.
    settings.ENRICHMENT_SEARCH_TIMEOUT = 30.0
    settings.ENRICHMENT_SLOW_CALL_SECONDS = 0.2
    settings.CIRCUIT_BREAKERS = {**settings.CIRCUIT_BREAKERS, BREAKER: {"fail_max": 2, "reset_timeout": 60}}
    for number in range(2):
        body = agent_api({"web": {"queries": [f"slow-{number}"]}, "deadline_ms": 800})
        assert [e["code"] for e in body["errors"]] == ["timeout"]
    assert breakers.get_breaker(BREAKER).state == "open"
    refused = agent_api({"web": {"queries": ["slow-open"]}, "deadline_ms": 800})
    assert [e["code"] for e in refused["errors"]] == ["unavailable"]
    assert search_upstream.accepted == 2


def test_calls_cut_by_a_short_deadline_do_not_count_against_the_provider(search_upstream, agent_api, settings):
    settings.ENRICHMENT_SEARCH_TIMEOUT = 30.0
    settings.ENRICHMENT_SLOW_CALL_SECONDS = 20.0  # far beyond these callers' own deadlines
    settings.CIRCUIT_BREAKERS = {**settings.CIRCUIT_BREAKERS, BREAKER: {"fail_max": 2, "reset_timeout": 60}}
    for number in range(4):
        body = agent_api({"web": {"queries": [f"impatient-{number}"]}, "deadline_ms": 300})
        assert [e["code"] for e in body["errors"]] == ["timeout"]
    breaker = breakers.get_breaker(BREAKER)
    assert (breaker.state, breaker.fail_counter) == ("closed", 0)
    assert search_upstream.accepted == 4  # every call reached the upstream: none was refused


@pytest.fixture
def running_experiment(auth_client):
    operator = auth_client("operator")
    body = experiment_body(key="fault-upstream", target_prompt_type="support", user_percentage=100)
    assert operator.post("/api/v1/experiments/", body, format="json").status_code == 201
    assert operator.post("/api/v1/experiments/fault-upstream/start").status_code == 200
    return "fault-upstream"


HUNG_CALLS = 4


@pytest.mark.django_db(transaction=True)
def test_unrelated_endpoints_keep_answering_while_hung_enrichment_calls_are_in_flight(
    live_server, search_upstream, settings, running_experiment, agent_key
):
    # Long enough that the calls stay in flight until the upstream lets go of them.
    settings.ENRICHMENT_SEARCH_TIMEOUT = settings.ENRICHMENT_MAX_DEADLINE_MS / 1000
    headers = {"Authorization": f"Api-Key {agent_key.raw_key}"}
    answers: list[httpx.Response | BaseException] = []

    def hung_call(number: int) -> None:
        body = {"web": {"queries": [f"hung-{number}"]}, "deadline_ms": settings.ENRICHMENT_MAX_DEADLINE_MS}
        try:
            answers.append(httpx.post(live_server.url + URL, json=body, headers=headers, timeout=120))
        except BaseException as exc:  # reported by the assertions below
            answers.append(exc)

    threads = [threading.Thread(target=hung_call, args=(n,), daemon=True) for n in range(HUNG_CALLS)]
    for thread in threads:
        thread.start()
    try:
        poll("every enrichment call to reach the hung upstream", lambda: search_upstream.held == HUNG_CALLS)
        with httpx.Client(base_url=live_server.url, headers=headers, timeout=60) as client:
            for number in range(20):
                resolved = client.post(
                    "/api/v1/prompts/resolve", json={"user_id": f"u-{number}", "prompt_type": "support"}
                )
                assert resolved.status_code == 200, resolved.text[:300]
                assert resolved.json()["in_experiment"] is True
                assert client.get("/healthz").status_code == 200
        # The hung calls were still waiting on the upstream the whole time.
        assert search_upstream.held == HUNG_CALLS and answers == []
    finally:
        search_upstream.release_held()  # the calls end now (connection reset), not at their deadline
        for thread in threads:
            thread.join(timeout=BOUND * 2)
    assert len(answers) == HUNG_CALLS, answers
    for answer in answers:
        assert isinstance(answer, httpx.Response), repr(answer)
        assert answer.status_code == 200, answer.text[:300]
        assert [e["code"] for e in answer.json()["errors"]] in (["upstream_unavailable"], ["timeout"])
