"""An agent's day, end to end: a live server, a real Celery worker, PostgreSQL/Redis, HTTP only.

Two scripted agents act for one creator with their own API keys, exactly as deployed agents do,
through the agent SDK (``agentops_client``, installed from ``sdk/python``): the onboarding agent
gets its prompt (evaluated locally from the features payload, its exposure reported by the SDK),
fetches outside context (from fake sources on loopback), records results and audit events and
pushes its timings and a workflow run; the mission agent takes the onboarding output as its input
and does the same, then re-sends its events with the same ids, as a client whose connection
dropped after the server had stored them. An analyst then checks, over the API with a
JWT, that statistics, the audit log, monitoring and the daily report written by the worker all
count exactly what the agents did, once.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

CREATOR = "creator-mina-cho"


def experiment_seed(*, actor, key: str, prompt_type: str) -> None:
    """A running experiment on ``prompt_type`` covering every user, through the services."""
    from experiments.services import lifecycle

    experiment = lifecycle.experiment_create(
        actor=actor,
        data={
            "key": key,
            "name": f"{prompt_type.title()} prompt tone",
            "target_prompt_type": prompt_type,
            "primary_metric": "success_rate",
            "guardrail_metrics": ["response_time_ms"],
            "user_percentage": 100,
            "variants": [
                {
                    "key": "control",
                    "content": f"You are the {prompt_type} agent. Be brief.",
                    "weight": 1,
                    "is_control": True,
                },
                {
                    "key": "warm",
                    "content": f"You are the {prompt_type} agent. Be warm.",
                    "weight": 1,
                    "is_control": False,
                },
            ],
        },
    )
    lifecycle.experiment_start(actor=actor, experiment=experiment)


class Agent:
    """A scripted agent: the agent SDK (``agentops_client``) for prompts, results, audit events and
    timings, and an httpx client with its API key for what the SDK does not cover (outside context,
    workflow runs); each of those calls carries a fresh request id."""

    def __init__(self, *, base_url: str, raw_key: str, name: str):
        from agentops_client import AgentOps

        self.name = name
        # Only flush() sends (no timer): the test counts the server's requests per endpoint.
        self.ops = AgentOps(base_url, raw_key, timeout=30, refresh_interval=3600, flush_interval=3600)
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Api-Key {raw_key}"}, timeout=30)
        self.request_ids: dict[str, str] = {}  # step -> the X-Request-ID sent
        self.audit_ids: dict[str, str] = {}  # step -> the audit event id the SDK made

    def call(self, step: str, method: str, path: str, **kwargs) -> httpx.Response:
        request_id = f"{self.name}-{step}-{uuid.uuid4().hex[:8]}"
        self.request_ids[step] = request_id
        response = self.http.request(method, path, headers={"X-Request-ID": request_id}, **kwargs)
        assert response.headers["X-Request-ID"] == request_id
        return response

    def work(self, *, prompt_type: str, experiment: str, query: str, results: list[dict], started: datetime) -> dict:
        prompt = self.ops.prompt(prompt_type, user_id=CREATOR, default="You are an agent.")
        assert prompt.source == "experiment" and prompt.experiment == experiment, prompt

        context = self.call(
            "context",
            "POST",
            "/api/v1/enrichment/context",
            json={"web": {"urls": [self.page_url], "queries": [query]}, "deadline_ms": 10_000},
        )
        assert context.status_code == 200, context.text
        snippets = context.json()
        assert snippets["partial"] is False, snippets["errors"]
        assert {s["source"] for s in snippets["external_snippets"]} == {"web", "search"}

        for row in results:
            assert self.ops.result(prompt, **row) == row["event_id"]
        self.audit_ids["audit"] = self.ops.audit(
            f"{prompt_type}.completed",
            resource=("creator", CREATOR),
            details={"variant": prompt.variant, "snippets": len(snippets["external_snippets"])},
        )
        for step, duration in (("llm", 812.5), ("context", snippets["elapsed_ms"])):
            self.ops.metric(f"agent.{prompt_type}.{step}", duration_ms=duration, event_id=f"{self.name}-{step}-timing")
        assert self.ops.flush(timeout=30)
        health = self.ops.health()
        assert health["delivered"]["results"] == len(results) and health["rejected"]["results"] == 0, health
        assert health["delivered"]["exposures"] == 1 and health["delivered"]["audit events"] == 1, health
        assert health["delivered"]["metrics"] == 2, health

        now = datetime.now(UTC)
        run = {
            "run_id": f"{self.name}-run-1",
            "agent": self.name,
            "workflow": prompt_type,
            "steps": 4,
            "retry_count": 0,
            "no_progress_count": 0,
            "critic_score": 0.9,
            "tokens": 1800,
            "outcome": "success",
            "started_at": started.isoformat(),
            "finished_at": now.isoformat(),
        }
        ran = self.call("run", "POST", "/api/v1/monitoring/agent-runs", json={"runs": [run]})
        assert ran.status_code == 200, ran.text
        assert ran.json()["accepted"] == 1
        # The agent's output: what the next agent starts from.
        return {"prompt": prompt, "snippets": snippets["external_snippets"]}


def result_rows(prefix: str, count: int, *, success: bool = True) -> list[dict]:
    return [
        {"event_id": f"{prefix}-{i}", "success": success, "response_time_ms": 900.0 + i, "tokens": 500 + i}
        for i in range(count)
    ]


def wait_for_daily_report(day: str, timeout: float = 60.0):
    from reports.models import JobOutcome, JobRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = JobRun.objects.filter(job="daily_report", period=day).exclude(outcome=JobOutcome.RUNNING).first()
        if run is not None:
            return run
        time.sleep(0.1)
    raise AssertionError(f"the worker wrote no daily report for {day}")


def test_an_agent_day_is_counted_once_everywhere(live_server, celery_worker, fake_sources, user_factory):
    from accounts.services import api_key_create
    from agentplatform.scheduling.tasks import JOB_TASKS
    from experiments.services.exposures import exposures_forget_seen
    from monitoring.recorder import recorder
    from reports.models import JobOutcome

    exposures_forget_seen()
    recorder._pending.clear()  # request timings earlier tests left unflushed in this process
    operator = user_factory(role="operator")
    experiment_seed(actor=operator, key="onboarding-tone", prompt_type="onboarding")
    experiment_seed(actor=operator, key="mission-tone", prompt_type="mission")
    agents = {}
    for name in ("onboarding-agent", "mission-agent"):
        agent_user = user_factory(role="agent", username=name, password=None)
        _, raw_key = api_key_create(user=agent_user, name="e2e")
        agents[name] = Agent(base_url=live_server.url, raw_key=raw_key, name=name)
        agents[name].page_url = f"{fake_sources.url}/creators/mina"
    started = datetime.now(UTC) - timedelta(seconds=5)

    # 1. Onboarding.
    onboarding = agents["onboarding-agent"].work(
        prompt_type="onboarding",
        experiment="onboarding-tone",
        query="Mina Cho cooking creator",
        results=result_rows("onb", 2),
        started=started,
    )
    assert "Korean home-cooking" in " ".join(s["text"] for s in onboarding["snippets"])

    # 2. Mission, from the onboarding output (its page title becomes the mission's search query).
    title = next(s["title"] for s in onboarding["snippets"] if s["source"] == "web")
    mission_agent = agents["mission-agent"]
    mission_agent.work(
        prompt_type="mission",
        experiment="mission-tone",
        query=f"{title} next mission",
        results=result_rows("mis", 3),
        started=started,
    )
    # The network drops after the server stored a batch: the agent sends the same events again,
    # with the same ids (what the SDK's own retries do after a lost answer).
    mission_prompt = mission_agent.ops.prompt("mission", user_id=CREATOR)
    retried_event = str(uuid.uuid4())
    for _ in range(2):
        for row in result_rows("mis-retry", 2):
            mission_agent.ops.result(mission_prompt, **row)
        mission_agent.ops.audit(
            "mission.retried", resource=("creator", CREATOR), event_id=retried_event, details={"attempt": _}
        )
        mission_agent.ops.metric("agent.mission.llm", duration_ms=640.0, event_id="mission-agent-retry-timing")
        assert mission_agent.ops.flush(timeout=30)
    health = mission_agent.ops.health()
    assert health["delivered"]["results"] == 3 + 2 and health["duplicates"]["results"] == 2, health
    assert health["delivered"]["audit events"] == 2 and health["duplicates"]["audit events"] == 1, health
    assert health["duplicates"]["metrics"] == 1, health
    for agent in agents.values():
        agent.ops.close()

    recorder.flush()  # the web process's background flush of request timings (off under tests)

    # 3. The analyst's view.
    analyst = user_factory(role="analyst")
    http = httpx.Client(base_url=live_server.url, timeout=30)
    token = http.post("/api/v1/auth/token", json={"username": analyst.username, "password": TEST_PASSWORD})
    assert token.status_code == 200, token.text
    http.headers["Authorization"] = f"Bearer {token.json()['access']}"

    for key, results in (("onboarding-tone", 2), ("mission-tone", 5)):
        stats = http.get(f"/api/v1/experiments/{key}/stats", params={"source": "raw"})
        assert stats.status_code == 200, stats.text
        variants = stats.json()["variants"]
        assert sum(v["exposures"] for v in variants) == 1, variants
        assert sum(v["results"] for v in variants) == results, variants

    events = http.get("/api/v1/audit/events", params={"page_size": 200}).json()["results"]
    by_request = {}
    for event in events:
        by_request.setdefault(event["request_id"], []).append(event)
    by_event_id = {}
    for event in events:
        by_event_id.setdefault(event["event_id"], []).append(event)
    for agent in agents.values():
        found = by_request.get(agent.request_ids["context"], [])
        assert [e["action"] for e in found] == ["enrichment.context_fetched"], found
        assert found[0]["actor"] == agent.name
        sent = by_event_id.get(agent.audit_ids["audit"], [])
        assert [(e["action"], e["actor"]) for e in sent] == [(f"{agent.name.split('-')[0]}.completed", agent.name)]
    retried = by_event_id[retried_event]  # sent twice, stored once (the first one's details)
    assert [(e["action"], e["details"]) for e in retried] == [("mission.retried", {"attempt": 0})]

    summary = http.get("/api/v1/monitoring/summary").json()
    counts = {op["operation"]: op["count"] for op in summary["operations"]}
    assert counts["agent.onboarding.llm"] == 1
    assert counts["agent.onboarding.context"] == 1
    assert counts["agent.mission.llm"] == 2  # its own timing and the retried one, counted once
    assert counts["agent.mission.context"] == 1
    # The server timed the agents' requests themselves (route names, one per call): the SDK sent
    # one batch per flush, read the features payload once per agent and resolved nothing remotely.
    assert counts["http POST experiments:experiment-results"] == 4
    assert counts["http POST experiments:experiment-exposures"] == 2
    assert counts["http GET experiments:growthbook-features"] == 2
    assert "http POST experiments:prompt-resolve" not in counts
    assert counts["http POST enrichment:context"] == 2

    today = datetime.now(UTC).date().isoformat()
    JOB_TASKS["daily_report"].delay(date=today)
    run = wait_for_daily_report(today)
    assert run.outcome == JobOutcome.SUCCESS, run.error_summary
    listing = http.get("/api/v1/reports/", params={"kind": "daily"}).json()
    report_id = next(r["id"] for r in listing["results"] if r["period"] == today)
    sections = http.get(f"/api/v1/reports/{report_id}").json()["data"]["sections"]
    running = {row["key"]: row for row in sections["experiments"]["running"]}
    assert (running["onboarding-tone"]["exposures_total"], running["onboarding-tone"]["results"]) == (1, 2)
    assert (running["mission-tone"]["exposures_total"], running["mission-tone"]["results"]) == (1, 5)
    audited = {row["action"]: row["events"] for row in sections["audit"]["by_action"]}
    assert audited["onboarding.completed"] == 1
    assert audited["mission.completed"] == 1
    assert audited["mission.retried"] == 1
    assert audited["enrichment.context_fetched"] == 2
    # The report lists the busiest operations; its totals and counts are the summary's.
    assert sections["monitoring"]["operations_count"] == sum(counts.values())
    reported = {op["operation"]: op["count"] for op in sections["monitoring"]["operations"]}
    assert reported == {operation: counts[operation] for operation in reported}
    assert reported["http POST experiments:experiment-results"] == 4
