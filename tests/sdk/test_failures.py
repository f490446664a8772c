"""The SDK never breaks the agent: the platform down, hanging, failing, stopped mid-run.

Each test drives the real client against a real server, or against a loopback stand-in that
misbehaves in one way (``tests/reliability/faults.py``), and asserts what the agent sees.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.reliability.faults import CuttableProxy, ScriptedUpstream, free_port
from tests.sdk.conftest import experiment_start, two_variants

pytestmark = [pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 10


@pytest.fixture
def running(user_factory):
    operator = user_factory(role="operator")
    return experiment_start(
        actor=operator, key="support-tone", prompt_type="support", user_percentage=100, variants=two_variants("support")
    )


def every_method(ops) -> None:
    """Every method an agent calls, once; any exception fails the test."""
    answer = ops.prompt("support", user_id="u-1", default="Default.", variables={"name": "Ada"})
    assert answer.content == "Default." and answer.source == "default"
    ops.prompt("support", user_id="u-1", label="staging", default="Default.")
    ops.result(answer, success=True)
    ops.score("helpfulness", 0.8, trace_id="t-1")
    ops.audit("ticket.closed", resource=("ticket", "T-1"), details={"turns": 3})
    ops.metric("tool.search", duration_ms=12.0)
    assert ops.flush(timeout=0.5) is False  # nothing can be delivered: it says so, it does not raise
    assert ops.health()["status"] == "degraded"


def test_platform_down_at_start_serves_the_default_and_never_raises(clients, caplog):
    from agentops_client import AgentOps

    ops = AgentOps(f"http://127.0.0.1:{free_port()}", "key", timeout=0.5)
    clients.append(ops)
    every_method(ops)
    health = ops.health()
    assert health["payload"] == "none" and health["platform_reachable"] is False
    assert "ConnectError" in health["last_error"]
    with caplog.at_level(logging.WARNING, logger="agentops_client"):
        ops.close(timeout=0.2)
    assert (
        sum(ops.health()["dropped"].values()) == 3
    )  # score, audit event, metric undeliverable at close: dropped and counted
    # ... and each said so, whether it was still queued or being retried when the client closed.
    warned = [r.getMessage() for r in caplog.records if "not delivered before close" in r.getMessage()]
    assert sum(int(message.split()[1]) for message in warned) == 3


def test_a_platform_that_hangs_costs_at_most_the_timeout(clients):
    from agentops_client import AgentOps

    upstream = ScriptedUpstream(mode="hang")
    try:
        ops = AgentOps(upstream.url, "key", timeout=0.3, init_timeout=0.3)
        clients.append(ops)
        every_method(ops)
        assert upstream.accepted >= 1  # it did try, and was held
        assert "Timeout" in ops.health()["last_error"]
        ops.close(timeout=0.2)
    finally:
        upstream.close()


def test_a_platform_answering_500_is_retried_and_never_raises(clients):
    from agentops_client import AgentOps

    upstream = ScriptedUpstream(mode="error")
    try:
        ops = AgentOps(upstream.url, "key", timeout=0.5, flush_interval=0.05, max_retry_delay=0.05)
        clients.append(ops)
        every_method(ops)
        assert ops.health()["retries"] >= 1
        # "HTTP 500 from ..." (or a reset, when the stand-in closes before reading a request's body).
        assert ops.health()["last_error"]
        ops.close(timeout=0.2)
    finally:
        upstream.close()


def test_the_last_payload_keeps_serving_when_the_platform_goes_away(platform, running, make_client):
    ops = make_client(refresh_interval=3600)
    before = ops.prompt("support", user_id="u-7", variables={"name": "Ada"})
    assert before.source == "experiment" and before.experiment == "support-tone"
    platform.stop()
    assert ops.refresh() is False
    during = ops.prompt("support", user_id="u-7", variables={"name": "Ada"})
    assert during.source == "cache"
    assert (during.experiment, during.variant, during.compiled) == (before.experiment, before.variant, before.compiled)
    assert ops.health()["payload"] == "cache" and ops.health()["status"] == "degraded"
    platform.start()
    assert ops.refresh() is True
    assert ops.prompt("support", user_id="u-7").source == "experiment"
    assert ops.health()["status"] == "ok"


def test_events_arrive_exactly_once_across_a_server_stopped_mid_run(platform, running, make_client):
    from audit.models import AuditEvent
    from experiments.models import Exposure, Result

    ops = make_client(refresh_interval=3600, flush_interval=0.2, max_retry_delay=1.0)
    sent_results: set[str] = set()
    exposed: set[str] = set()
    audit_ids: set[str] = set()

    def turn(n: int) -> None:
        user = f"user-{n % 700}"
        answer = ops.prompt("support", user_id=user)
        exposed.add(user)
        sent_results.add(ops.result(answer, success=n % 3 != 0, response_time_ms=100.0 + n, tokens=n))
        if n % 10 == 0:
            audit_ids.add(ops.audit("turn.done", resource=("user", user)))

    for n in range(1500):
        turn(n)
    platform.stop()  # in the middle of the run: batches in flight fail, later ones queue
    stopped_at = time.monotonic()
    n = 1500
    while time.monotonic() - stopped_at < OUTAGE_SECONDS:
        for _ in range(100):
            turn(n)
            n += 1
        time.sleep(0.2)  # an agent's pace, not a correctness wait
    assert ops.health()["platform_reachable"] is False
    platform.start()
    for _ in range(500):
        turn(n)
        n += 1
    assert ops.flush(timeout=120)

    assert set(Result.objects.values_list("event_id", flat=True)) == sent_results
    assert Result.objects.count() == len(sent_results)
    assert set(Exposure.objects.values_list("user_id", flat=True)) == exposed
    assert set(map(str, AuditEvent.objects.filter(action="turn.done").values_list("event_id", flat=True))) == audit_ids
    health = ops.health()
    assert health["dropped"]["results"] == 0 and health["rejected"]["results"] == 0
    # A batch the server stored just as it stopped is answered on its retry as duplicates: each
    # result was counted once, one way or the other (the database holds each once, above).
    assert health["delivered"]["results"] + health["duplicates"]["results"] == len(sent_results)
    assert health["retries"] >= 1
    # Back to healthy without waiting for the (hour-long) refresh interval: reaching the platform
    # again refreshes the cached payload, and the old error is no longer reported.
    for _ in range(50):
        if ops.health()["status"] == "ok":
            break
        time.sleep(0.1)
    assert ops.health()["status"] == "ok" and ops.health()["last_error"] is None


def test_a_batch_whose_answer_was_lost_is_retried_with_the_same_ids(platform, running, agent_api_key, clients):
    from agentops_client import AgentOps

    from experiments.models import Result

    proxy = CuttableProxy(("127.0.0.1", platform.port))
    try:
        ops = AgentOps(
            f"http://127.0.0.1:{proxy.port}",
            agent_api_key,
            refresh_interval=3600,
            flush_interval=0.1,
            max_retry_delay=0.2,
        )
        clients.append(ops)
        answer = ops.prompt("support", user_id="user-1")
        assert ops.flush(timeout=30)
        proxy.drop_reply_holding(b'"accepted":')  # the server stores the batch; the client never hears
        event_ids = {ops.result(answer, success=True) for _ in range(50)}
        assert ops.flush(timeout=30)
        assert proxy.dropped_replies == 1
        assert set(Result.objects.values_list("event_id", flat=True)) == event_ids
        health = ops.health()
        assert health["delivered"]["results"] == 0 and health["duplicates"]["results"] == 50
    finally:
        proxy.close()


def test_drop_oldest_when_the_queue_is_full(platform, running, make_client):

    # No timer: only flush() sends, so the queue alone decides what is kept.
    ops = make_client(max_queue=5, refresh_interval=3600, flush_interval=3600)
    platform.stop()
    for n in range(8):
        ops.metric("tool.search", duration_ms=float(n))
    assert ops.health()["dropped"]["metrics"] == 3 and ops.health()["queued"]["metrics"] == 5
    platform.start()
    assert ops.flush(timeout=30)
    health = ops.health()
    assert health["delivered"]["metrics"] == 5 and health["dropped"]["metrics"] == 3


class _Recorder(BaseHTTPRequestHandler):
    """Answers each POST from a script of (status, headers, body) and records when it arrived."""

    script: list = []
    arrivals: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send(404, {}, {"error": {"code": "not_found", "message": "No such thing."}})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).arrivals.append((self.path, time.monotonic()))
        status, headers, body = type(self).script.pop(0) if type(self).script else (200, {}, None)
        self._send(status, headers, body or {"accepted": 1, "duplicates": 0, "rejected": []})

    def _send(self, status, headers, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def scripted():
    handler = type("Handler", (_Recorder,), {"script": [], "arrivals": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_retry_after_of_a_429_is_honoured(scripted, clients):
    from agentops_client import AgentOps

    handler, url = scripted
    handler.script.append((429, {"Retry-After": "2"}, {"error": {"code": "rate_limited", "message": "Slow down."}}))
    # Backoff alone would retry within 0.05 s: a later retry is the Retry-After at work.
    ops = AgentOps(url, "key", flush_interval=0.05, max_retry_delay=0.05)
    clients.append(ops)
    ops.metric("tool.search", duration_ms=1.0)
    assert ops.flush(timeout=30)
    (first_path, first), (second_path, second) = handler.arrivals
    assert first_path == second_path == "/api/v1/monitoring/operations"
    assert second - first >= 2.0


def test_a_4xx_is_logged_once_and_not_retried(scripted, clients, caplog):
    from agentops_client import AgentOps

    handler, url = scripted
    refusal = (400, {}, {"error": {"code": "validation_failed", "message": "The body is not a batch."}})
    handler.script.extend([refusal, refusal])
    ops = AgentOps(url, "key", flush_interval=0.05, max_retry_delay=0.05)
    clients.append(ops)
    with caplog.at_level(logging.ERROR, logger="agentops_client"):
        ops.metric("tool.search", duration_ms=1.0)
        assert ops.flush(timeout=30)
        ops.metric("tool.search", duration_ms=2.0)
        assert ops.flush(timeout=30)
    assert [path for path, _ in handler.arrivals] == ["/api/v1/monitoring/operations"] * 2  # no retries
    logged = [r.getMessage() for r in caplog.records if r.name == "agentops_client" and r.levelno >= logging.ERROR]
    assert len(logged) == 1 and "The body is not a batch." in logged[0]
    assert ops.health()["rejected"]["metrics"] == 2 and ops.health()["retries"] == 0


def test_scores_are_queued_to_the_scores_endpoint(platform, make_client):
    """Without the evaluations capability the platform answers 404: logged once, dropped, not retried."""
    ops = make_client(refresh_interval=3600)
    score_id = ops.score("helpfulness", 0.8, trace_id=uuid.uuid4().hex)
    assert score_id
    assert ops.flush(timeout=30)
    health = ops.health()
    assert health["rejected"]["scores"] == 1 and health["retries"] == 0
