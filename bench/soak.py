"""make soak: the platform under 50 concurrent agents with nothing lost, then the long fuzz run.

Starts gunicorn (production settings, PostgreSQL database ``soak``, Redis dbs 10 and 11) and a
Celery worker on loopback, then runs ``SOAK_AGENTS`` simulated agents for ``SOAK_SECONDS``
seconds. Each agent resolves a prompt, posts the result of the variant it got, an audit event and
a timed operation, each with its own id, and retries failures with the same ids. Afterwards every
acknowledged id must be stored exactly once, the experiment's stats and the monitoring summary
must count exactly the acknowledged results and operations, and no answer may be a 5xx. Then the
schemathesis property of ``make test`` runs with many more examples. The figures, and the fast
fault tests of ``tests/reliability`` run once more, go to ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import wait_for  # noqa: E402
from bench.run import PG, REDIS, server_env  # noqa: E402

# The caller's environment, before setup_django() adds the server's production variables to it.
ORIGINAL_ENV = dict(os.environ)
AGENTS = int(os.environ.get("SOAK_AGENTS", "50"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
FUZZ_EXAMPLES = int(os.environ.get("SOAK_FUZZ_EXAMPLES", "12"))
# Redis databases of the soak's cache and broker; another checkout's tests flushing one of them
# mid-run shows up as lost monitoring counts, so they can be moved.
CACHE_DB = os.environ.get("SOAK_REDIS_CACHE_DB", "10")
BROKER_DB = os.environ.get("SOAK_REDIS_BROKER_DB", "11")
MAX_ATTEMPTS = 8  # per request; a request still failing after these is counted as not acknowledged
WORK = ROOT / "var" / "soak"
DOC = ROOT / "docs" / "RELIABILITY.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def soak_env() -> dict[str, str]:
    env = server_env()
    env.update(
        DATABASE_URL=f"{PG}/soak",
        REDIS_URL=f"{REDIS}/{CACHE_DB}",
        CELERY_BROKER_URL=f"{REDIS}/{BROKER_DB}",
        BENCH_ENDPOINTS="0",
        STATIC_ROOT=str(WORK / "static"),
        MEDIA_ROOT=str(WORK / "media"),
        VAR_DIR=str(WORK / "var"),
    )
    return env


def prepare(env: dict[str, str]) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-qc", "DROP DATABASE IF EXISTS soak WITH (FORCE)"], check=True)
    subprocess.run(["psql", f"{PG}/postgres", "-qc", "CREATE DATABASE soak"], check=True)
    for db in (CACHE_DB, BROKER_DB):
        subprocess.run(["redis-cli", "-u", f"{REDIS}/{db}", "FLUSHDB"], check=True, capture_output=True)
    WORK.mkdir(parents=True, exist_ok=True)
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def seed() -> list[str]:
    """A running experiment on prompt type ``soak`` (all users) and one API key per agent."""
    from accounts.models import User
    from accounts.services import api_key_create
    from experiments import services

    operator = User.objects.create_user(username="soak-operator", role="operator", password=None)
    experiment = services.experiment_create(
        actor=operator,
        data={
            "key": "soak",
            "name": "Soak",
            "target_prompt_type": "soak",
            "primary_metric": "success_rate",
            "user_percentage": 100,
            "variants": [
                {"key": "control", "name": "Control", "content": "A", "weight": 1, "is_control": True},
                {"key": "treatment", "name": "Treatment", "content": "B", "weight": 1, "is_control": False},
            ],
        },
    )
    services.experiment_start(actor=operator, experiment=experiment)
    from accounts.tokens import token_pair_for

    analyst = User.objects.create_user(username="soak-analyst", role="analyst", password=None)
    keys = [token_pair_for(analyst)["access"]]
    for number in range(AGENTS):
        agent = User.objects.create_user(username=f"soak-agent-{number}", role="agent", password=None)
        keys.append(api_key_create(user=agent, name="soak")[1])
    return keys


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.requests = 0
        self.retries = 0
        self.transport_errors = 0
        self.acked = {"results": set(), "audit": set(), "operations": set()}
        self.unacked = Counter()

    def record(self, status: int, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status] += 1
            self.latencies.append(seconds)


def send(client: httpx.Client, tally: Tally, method: str, path: str, body: dict) -> httpx.Response | None:
    """Sends until a non-retryable answer; retries (same body, same ids) on 5xx, 429 and transport errors."""
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            with tally.lock:
                tally.retries += 1
            time.sleep(min(0.05 * 2**attempt, 1.0))
        started = time.perf_counter()
        try:
            response = client.request(method, path, json=body)
        except httpx.TransportError:
            with tally.lock:
                tally.transport_errors += 1
            continue
        tally.record(response.status_code, time.perf_counter() - started)
        if response.status_code >= 500 or response.status_code == 429:
            continue
        return response
    return None


def agent_loop(base_url: str, key: str, number: int, deadline: float, tally: Tally) -> None:
    headers = {"Authorization": f"Api-Key {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        sequence = 0
        while time.monotonic() < deadline:
            sequence += 1
            user_id = f"user-{number}-{sequence}"
            resolved = send(
                client, tally, "POST", "/api/v1/prompts/resolve", {"user_id": user_id, "prompt_type": "soak"}
            )
            if resolved is None or resolved.status_code != 200 or not resolved.json().get("variant"):
                tally.unacked["resolve"] += 1
                continue
            now = dt.datetime.now(dt.UTC).isoformat()
            result_id = f"soak-{uuid.uuid4()}"
            row = {"event_id": result_id, "user_id": user_id, "variant": resolved.json()["variant"], "success": True}
            answer = send(client, tally, "POST", "/api/v1/experiments/soak/results", {"results": [row]})
            if answer is not None and answer.status_code == 200 and not answer.json().get("rejected"):
                with tally.lock:
                    tally.acked["results"].add(result_id)
            else:
                tally.unacked["results"] += 1
            audit_id = str(uuid.uuid4())
            event = {"event_id": audit_id, "action": "soak.stepped", "resource_type": "user", "resource_id": user_id}
            answer = send(client, tally, "POST", "/api/v1/audit/events", {"events": [event]})
            if answer is not None and answer.status_code in (200, 207) and not answer.json().get("errors"):
                with tally.lock:
                    tally.acked["audit"].add(audit_id)
            else:
                tally.unacked["audit"] += 1
            operation_id = f"op-{uuid.uuid4()}"
            operation = {
                "event_id": operation_id,
                "operation": "soak.step",
                "duration_ms": 1.0 + sequence % 50,
                "success": True,
                "occurred_at": now,
            }
            answer = send(client, tally, "POST", "/api/v1/monitoring/operations", {"operations": [operation]})
            if os.environ.get("SOAK_DEBUG"):
                print(answer.status_code if answer else None, answer.text if answer else None, flush=True)
            if answer is not None and answer.status_code in (200, 207) and not answer.json().get("errors"):
                with tally.lock:
                    tally.acked["operations"].add(operation_id)
            else:
                tally.unacked["operations"] += 1


def verify(tally: Tally) -> dict:
    """Every acknowledged id stored exactly once; stats and monitoring count exactly those."""
    from django.db.models import Count

    from audit.models import AuditEvent
    from experiments.models import Result

    results = set(Result.objects.filter(event_id__startswith="soak-").values_list("event_id", flat=True))
    result_dupes = Result.objects.values("event_id").annotate(n=Count("id")).filter(n__gt=1).count()
    audit_ids = {
        str(value) for value in AuditEvent.objects.filter(action="soak.stepped").values_list("event_id", flat=True)
    }
    audit_dupes = AuditEvent.objects.values("event_id").annotate(n=Count("id")).filter(n__gt=1).count()
    stats_count = Result.objects.filter(experiment__key="soak").count()
    return {
        "results_acked": len(tally.acked["results"]),
        "results_lost": len(tally.acked["results"] - results),
        "results_unexpected": len(results - tally.acked["results"]),
        "results_duplicates": result_dupes,
        "audit_acked": len(tally.acked["audit"]),
        "audit_lost": len(tally.acked["audit"] - audit_ids),
        "audit_unexpected": len(audit_ids - tally.acked["audit"]),
        "audit_duplicates": audit_dupes,
        "operations_acked": len(tally.acked["operations"]),
        "stats_results": stats_count,
    }


def fuzz(env: dict[str, str]) -> tuple[int, str]:
    test_env = {k: v for k, v in ORIGINAL_ENV.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    test_env.update(
        DATABASE_TEST_NAME="test_soak",
        REDIS_URL=f"{REDIS}/9",  # the tests flush their Redis db: never the server's db 10
        SCHEMATHESIS_MAX_EXAMPLES=str(FUZZ_EXAMPLES),
    )
    test_env.pop("DATABASE_URL", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/reliability",
            "-q",
            "-p",
            "no:cacheprovider",
            "--create-db",
        ],
        cwd=ROOT,
        env=test_env,
        capture_output=True,
        text=True,
        check=False,
    )
    (WORK / "fuzz.log").write_text(completed.stdout + completed.stderr)
    return completed.returncode, (completed.stdout.strip().splitlines() or ["(no output)"])[-1]


def write_doc(figures: dict) -> None:
    lines = [
        "# Reliability and security figures",
        "",
        f"Written by `make soak` (`bench/soak.py`) on {figures['when']} UTC, on this 2-core machine:",
        "gunicorn (2 workers x 4 threads, production settings), PostgreSQL database `soak`, Redis dbs",
        f"{CACHE_DB} (cache) and {BROKER_DB} (broker), one Celery worker; all traffic on loopback.",
        "",
        "## Load held, nothing lost",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| simulated agents | {AGENTS} for {SECONDS:.0f} s |",
        f"| requests | {figures['requests']} ({figures['rps']:.0f} req/s) |",
        f"| latency p50 / p99 | {figures['p50']:.1f} ms / {figures['p99']:.1f} ms |",
        f"| 5xx answers | {figures['5xx']} |",
        f"| 429 answers (retried) | {figures['429']} |",
        f"| retries (same ids) / transport errors | {figures['retries']} / {figures['transport_errors']} |",
        f"| results acknowledged / stored / lost / duplicated | {figures['results_acked']} / "
        f"{figures['results_acked'] - figures['results_lost']} / {figures['results_lost']} / "
        f"{figures['results_duplicates']} |",
        f"| audit events acknowledged / lost / duplicated | {figures['audit_acked']} / {figures['audit_lost']} / "
        f"{figures['audit_duplicates']} |",
        f"| operations acknowledged / counted by monitoring | {figures['operations_acked']} / "
        f"{figures['monitoring_count']} |",
        f"| results counted by the experiment / acknowledged | {figures['stats_results']} / "
        f"{figures['results_acked']} |",
        f"| **events lost** | **{figures['results_lost'] + figures['audit_lost']}** |",
        "",
        "## Inputs tried",
        "",
        f"- Schemathesis over every operation of `/api/schema/` with each role's credentials, "
        f"{FUZZ_EXAMPLES} examples per operation and role (fixed seed), plus the hand-written hostile",
        "  input of `tests/reliability/test_hostile_input.py` (every field of every write endpoint x",
        "  23 hostile values, 11 malformed bodies, oversize bodies and batches, markup and formulas",
        f"  through the admin and CSV export): `{figures['fuzz']}`.",
        "",
        "## Faults survived",
        "",
        "Run by the same `tests/reliability` pass (also in `make test`):",
        "",
        "- Redis (a private `redis-server`) stopped mid-run and restarted: resolve, audit and metrics",
        "  kept answering; exposures buffered before, during and after the outage all reached the",
        "  database; the auth rate limit failed closed; no process restart.",
        "- PostgreSQL cut through a TCP proxy: 503 JSON envelopes with request ids (no HTML, no",
        "  traceback), `/readyz` 503 naming `database`, `/healthz` 200; recovery without restart.",
        "- Upstream hang/errors: covered by `tests/enrichment/test_context_api.py` (deadline holds,",
        "  breaker opens, fails fast and recovers).",
        "",
    ]
    DOC.write_text("\n".join(lines))


def main() -> int:
    env = soak_env()
    port = free_port()
    print(f"soak: preparing database soak and Redis dbs {CACHE_DB}/{BROKER_DB}", flush=True)
    prepare(env)
    setup_django(env)
    analyst_token, *keys = seed()
    WORK.mkdir(parents=True, exist_ok=True)
    log = open(WORK / "gunicorn.log", "w")  # noqa: SIM115 (lives as long as the server)
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "agentplatform.wsgi:application", "-c", "gunicorn.conf.py"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "agentplatform",
            "worker",
            "--concurrency",
            "1",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(WORK / "worker.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    tally = Tally()
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        print(f"soak: {AGENTS} agents for {SECONDS:.0f} s", flush=True)
        started = time.monotonic()
        deadline = started + SECONDS
        threads = [
            threading.Thread(target=agent_loop, args=(f"http://127.0.0.1:{port}", key, n, deadline, tally))
            for n, key in enumerate(keys)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        time.sleep(2)  # let the workers' buffers flush
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).isoformat()
        summary = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/monitoring/summary",
            params={"operation": "soak.step", "since": since},
            headers={"Authorization": f"Bearer {analyst_token}"},
            timeout=30,
        )
        print(f"soak: monitoring summary {summary.status_code} {summary.text[:300]}", flush=True)
        api_monitoring_count = summary.json().get("count") if summary.status_code == 200 else None
    finally:
        server.terminate()
        worker.terminate()
        server.wait(timeout=30)
        worker.wait(timeout=30)
    print("soak: verifying", flush=True)
    figures = verify(tally)
    figures["monitoring_count"] = api_monitoring_count
    latencies = sorted(tally.latencies) or [0.0]
    figures.update(
        when=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        requests=tally.requests,
        rps=tally.requests / elapsed,
        p50=statistics.median(latencies) * 1000,
        p99=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        retries=tally.retries,
        transport_errors=tally.transport_errors,
        **{"5xx": sum(n for s, n in tally.statuses.items() if s >= 500), "429": tally.statuses[429]},
    )
    print(f"soak: {figures}", flush=True)
    print(f"soak: schemathesis with {FUZZ_EXAMPLES} examples per operation and role", flush=True)
    code, summary = fuzz(env) if FUZZ_EXAMPLES else (0, "skipped (SOAK_FUZZ_EXAMPLES=0)")
    figures["fuzz"] = summary
    write_doc(figures)
    print(f"soak: wrote {DOC.relative_to(ROOT)}", flush=True)
    ok = (
        figures["5xx"] == 0
        and figures["results_lost"] == 0
        and figures["audit_lost"] == 0
        and figures["results_duplicates"] == 0
        and figures["audit_duplicates"] == 0
        and figures["monitoring_count"] == figures["operations_acked"]
        and figures["stats_results"] == figures["results_acked"]
        and code == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
