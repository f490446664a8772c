"""make soak: the platform under 50 concurrent agents with nothing lost, then the long fuzz run.

Starts gunicorn (production settings, PostgreSQL database ``soak``, Redis dbs 10 and 11) and a
Celery worker on loopback, then runs ``SOAK_AGENTS`` simulated agents for ``SOAK_SECONDS``
seconds. Each agent resolves a prompt, posts the result of the variant it got, an audit event and
a timed operation, each with its own id, and retries failures with the same ids. Afterwards every
acknowledged id must be stored exactly once, the experiment's stats (read through
``GET /api/v1/experiments/soak/stats``, both sources) and the monitoring summary must count exactly
the acknowledged results, users and operations, and no answer may be a 5xx. Then, on the same
server, an upstream hangs: the search provider points at a loopback server that accepts and never
answers, and resolve and ``/healthz`` latencies are measured with and without hung enrichment
calls in flight, with the enrichment answer times against their deadline and the breaker's
fail-fast answers. Then the schemathesis property of ``make test`` runs with many more examples,
together with the fault tests of ``tests/reliability``. Everything goes to ``docs/RELIABILITY.md``.
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
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import wait_for  # noqa: E402
from bench.run import PG, REDIS, server_env  # noqa: E402
from tests.reliability.faults import ScriptedUpstream  # noqa: E402

# The caller's environment, before setup_django() adds the server's production variables to it.
ORIGINAL_ENV = dict(os.environ)
AGENTS = int(os.environ.get("SOAK_AGENTS", "50"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
FUZZ_EXAMPLES = int(os.environ.get("SOAK_FUZZ_EXAMPLES", "12"))
# Redis databases of the soak's cache and broker; another checkout's tests flushing one of them
# mid-run shows up as lost monitoring counts, so they can be moved.
CACHE_DB = os.environ.get("SOAK_REDIS_CACHE_DB", "10")
BROKER_DB = os.environ.get("SOAK_REDIS_BROKER_DB", "11")
# The hung-upstream phase: seconds per measurement window, unrelated clients, hung calls in flight.
HANG_WINDOW = float(os.environ.get("SOAK_HANG_SECONDS", "10"))
UNRELATED_CLIENTS = 4
HUNG_CALLS = 4
# Milliseconds: deadline of the hung calls, below the search provider's own timeout (5 s), so each
# is cut by its deadline; the breaker phase uses the default deadline (8 s), which outlasts it.
HUNG_DEADLINE_MS = 3000
FAILFAST_CALLS = 20
# PostgreSQL databases and the Redis db of the fault/fuzz tests, movable like the dbs above so two
# checkouts can soak at once without dropping each other's data.
DATABASE = os.environ.get("SOAK_DATABASE", "soak")
TEST_DATABASE = os.environ.get("SOAK_TEST_DATABASE", "test_soak")
TEST_REDIS_DB = os.environ.get("SOAK_REDIS_TEST_DB", "9")
MAX_ATTEMPTS = 8  # per request; a request still failing after these is counted as not acknowledged
WORK = ROOT / "var" / "soak"
DOC = ROOT / "docs" / "RELIABILITY.md"


# The security suite outside tests/reliability: every test docs/security.md names for a protection
# (tests/reliability/test_soak_security_list.py keeps the two equal), run in the same pass.
SECURITY_TESTS = (
    "tests/accounts/test_api_keys.py",
    "tests/accounts/test_denials.py",
    "tests/accounts/test_jwt.py",
    "tests/accounts/test_jwt_processes.py",
    "tests/accounts/test_lockout.py",
    "tests/accounts/test_lockout_race.py",
    "tests/accounts/test_matrix.py",
    "tests/accounts/test_memo_channel.py",
    "tests/accounts/test_refresh_race.py",
    "tests/agentplatform/test_client_ip.py",
    "tests/agentplatform/test_env.py",
    "tests/agentplatform/test_probes.py",
    "tests/agentplatform/test_query.py",
    "tests/agentplatform/test_setup_db_roles.py",
    "tests/enrichment/test_ssrf.py",
    "tests/experiments/test_exposures.py",
    "tests/monitoring/test_admin.py",
    "tests/monitoring/test_api.py",
    "tests/monitoring/test_operations.py",
    "tests/reports/test_schedule_admin.py",
    "tests/reports/test_task_arguments.py",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def soak_env() -> dict[str, str]:
    env = server_env()
    env.update(
        DATABASE_URL=f"{PG}/{DATABASE}",
        REDIS_URL=f"{REDIS}/{CACHE_DB}",
        CELERY_BROKER_URL=f"{REDIS}/{BROKER_DB}",
        BENCH_ENDPOINTS="0",
        # Every result is acknowledged before the stats are read, so the rollup may run up to now.
        EXPERIMENT_STATS_ROLLUP_LAG_SECONDS="0",
        STATIC_ROOT=str(WORK / "static"),
        MEDIA_ROOT=str(WORK / "media"),
        VAR_DIR=str(WORK / "var"),
    )
    return env


def prepare(env: dict[str, str]) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"], check=True)
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {DATABASE}"], check=True)
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
    from experiments.services import lifecycle

    operator = User.objects.create_user(username="soak-operator", role="operator", password=None)
    experiment = lifecycle.experiment_create(
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
    lifecycle.experiment_start(actor=operator, experiment=experiment)
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
        # Acknowledged results per variant: their count, and the users they came from.
        self.variant_results: Counter[str] = Counter()
        self.variant_users: dict[str, set[str]] = defaultdict(set)
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
                    tally.variant_results[row["variant"]] += 1
                    tally.variant_users[row["variant"]].add(user_id)
            else:
                tally.unacked["results"] += 1
            audit_id = str(uuid.uuid4())
            event = {"event_id": audit_id, "action": "soak.stepped", "resource_type": "user", "resource_id": user_id}
            answer = send(client, tally, "POST", "/api/v1/audit/events", {"events": [event]})
            if answer is not None and answer.status_code == 200 and not answer.json().get("rejected"):
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
            if answer is not None and answer.status_code == 200 and not answer.json().get("rejected"):
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
    }


def stats_check(base_url: str, token: str, tally: Tally) -> dict:
    """Per variant, results and users as ``GET /api/v1/experiments/soak/stats`` counts them (raw
    and rollup sources) against what the soak had acknowledged."""
    expected = {
        variant: {"results": tally.variant_results[variant], "users": len(tally.variant_users[variant])}
        for variant in sorted(tally.variant_results)
    }
    counted: dict[str, dict] = {}
    for source in ("raw", "rollup"):
        response = httpx.get(
            f"{base_url}/api/v1/experiments/soak/stats",
            params={"source": source},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        if response.status_code != 200:
            print(f"soak: stats ({source}) answered {response.status_code} {response.text[:300]}", flush=True)
            counted[source] = {}
            continue
        counted[source] = {
            variant["key"]: {
                "results": variant["results"],
                "users": variant["metrics"].get("success_rate", {}).get("n", 0),
            }
            for variant in response.json()["variants"]
        }
    return {"expected": expected, **counted, "ok": all(counted[source] == expected for source in ("raw", "rollup"))}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


class Unrelated:
    """Clients resolving prompts and reading ``/healthz`` back to back, recording every latency."""

    def __init__(self, base_url: str, keys: list[str]) -> None:
        self.base_url = base_url
        self.keys = keys
        self.lock = threading.Lock()

    def measure(self, seconds: float, label: str) -> dict:
        latencies: dict[str, list[float]] = {"resolve": [], "healthz": []}
        statuses: Counter[int] = Counter()
        stop = time.monotonic() + seconds

        def client_loop(number: int, key: str) -> None:
            with httpx.Client(
                base_url=self.base_url, headers={"Authorization": f"Api-Key {key}"}, timeout=60
            ) as client:
                sequence = 0
                while time.monotonic() < stop:
                    sequence += 1
                    user = {"user_id": f"{label}-{number}-{sequence}", "prompt_type": "soak"}
                    for name, method, path, body in (
                        ("resolve", "POST", "/api/v1/prompts/resolve", user),
                        ("healthz", "GET", "/healthz", None),
                    ):
                        started = time.perf_counter()
                        try:
                            status = client.request(method, path, json=body).status_code
                        except httpx.HTTPError:
                            status = 0
                        with self.lock:
                            latencies[name].append(time.perf_counter() - started)
                            statuses[status] += 1

        threads = [
            threading.Thread(target=client_loop, args=(n, key)) for n, key in enumerate(self.keys[:UNRELATED_CLIENTS])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {
            **{f"{name}_p50": percentile(values, 0.5) for name, values in latencies.items()},
            **{f"{name}_p99": percentile(values, 0.99) for name, values in latencies.items()},
            **{f"{name}_max": max(values, default=0.0) * 1000 for name, values in latencies.items()},
            "requests": sum(len(values) for values in latencies.values()),
            # Requests that waited a second or more (for a free server thread, typically).
            "over_1s": sum(1 for values in latencies.values() for value in values if value >= 1.0),
            "non_200": sum(n for status, n in statuses.items() if status != 200),
        }


def enrichment_call(base_url: str, key: str, query: str, deadline_ms: int | None) -> tuple[float, int, list[str]]:
    body: dict = {"web": {"queries": [query]}}
    if deadline_ms is not None:
        body["deadline_ms"] = deadline_ms
    started = time.perf_counter()
    try:
        response = httpx.post(
            f"{base_url}/api/v1/enrichment/context",
            json=body,
            headers={"Authorization": f"Api-Key {key}"},
            timeout=60,
        )
    except httpx.HTTPError:
        return time.perf_counter() - started, 0, []
    elapsed = time.perf_counter() - started
    codes = [error["code"] for error in response.json().get("errors", [])] if response.status_code == 200 else []
    return elapsed, response.status_code, codes


def hang_phase(base_url: str, keys: list[str], upstream: ScriptedUpstream) -> dict:
    """Unrelated latencies with and without hung enrichment calls in flight; answer times of the
    hung calls against their deadline; then the breaker opening and failing fast."""
    unrelated = Unrelated(base_url, keys)
    figures: dict = {"baseline": unrelated.measure(HANG_WINDOW, "baseline")}

    hung: list[tuple[float, int, list[str]]] = []
    stop = threading.Event()

    def hung_loop(number: int) -> None:
        key = keys[UNRELATED_CLIENTS + number]
        sequence = 0
        while not stop.is_set():
            sequence += 1
            hung.append(enrichment_call(base_url, key, f"hung-{number}-{sequence}", HUNG_DEADLINE_MS))

    callers = [threading.Thread(target=hung_loop, args=(n,)) for n in range(HUNG_CALLS)]
    for caller in callers:
        caller.start()
    deadline = time.monotonic() + 30
    while upstream.held < HUNG_CALLS and time.monotonic() < deadline:
        time.sleep(0.02)
    figures["hung"] = unrelated.measure(HANG_WINDOW, "hung")
    stop.set()
    for caller in callers:
        caller.join()
    upstream.release_held()
    times = [elapsed for elapsed, _, _ in hung]
    figures["hung_calls"] = {
        "calls": len(hung),
        "status_200": sum(1 for _, status, _ in hung if status == 200),
        "codes": dict(Counter(code for _, _, codes in hung for code in codes)),
        "p50": percentile(times, 0.5),
        "max": max(times, default=0.0) * 1000,
        "deadline_ms": HUNG_DEADLINE_MS,
    }

    # The default deadline (8 s) outlasts the provider's timeout (5 s): each hung call now fails
    # against the provider, and its breaker (fail_max 5) opens; later calls are refused at once.
    tripping: list[tuple[float, int, list[str]]] = []
    trippers = [
        threading.Thread(target=lambda n=n: tripping.append(enrichment_call(base_url, keys[n], f"trip-{n}", None)))
        for n in range(5)
    ]
    for thread in trippers:
        thread.start()
    for thread in trippers:
        thread.join()
    accepted_before = upstream.accepted
    fast = [enrichment_call(base_url, keys[n % 5], f"fast-{n}", None) for n in range(FAILFAST_CALLS)]
    upstream.release_held()
    fast_times = [elapsed for elapsed, _, _ in fast]
    figures["breaker"] = {
        "tripping_codes": dict(Counter(code for _, _, codes in tripping for code in codes)),
        "tripping_max": max((elapsed for elapsed, _, _ in tripping), default=0.0) * 1000,
        "fast_calls": len(fast),
        "fast_codes": dict(Counter(code for _, _, codes in fast for code in codes)),
        "fast_p50": percentile(fast_times, 0.5),
        "fast_max": max(fast_times, default=0.0) * 1000,
        "reached_upstream_while_open": upstream.accepted - accepted_before,
    }
    return figures


FAULT_MODULES = ("test_faults", "test_worker_killed", "test_upstream_faults")


def fault_outcomes(junit: Path) -> dict[str, str]:
    """``module::test`` -> passed / failed / skipped, for the fault tests of the pytest run."""
    outcomes: dict[str, str] = {}
    if not junit.exists():
        return outcomes
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - pytest's own report, just written
        module = case.get("classname", "").rpartition(".")[2]
        if module not in FAULT_MODULES:
            continue
        outcome = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        outcomes[f"{module}::{case.get('name')}"] = outcome
    return outcomes


def fuzz(env: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    test_env = {k: v for k, v in ORIGINAL_ENV.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    test_env.update(
        DATABASE_TEST_NAME=TEST_DATABASE,
        REDIS_URL=f"{REDIS}/{TEST_REDIS_DB}",  # the tests flush their Redis db: never the server's
        SCHEMATHESIS_MAX_EXAMPLES=str(FUZZ_EXAMPLES),
    )
    test_env.pop("DATABASE_URL", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/reliability",
            *SECURITY_TESTS,
            "-q",
            "-p",
            "no:cacheprovider",
            "--create-db",
            f"--junitxml={WORK / 'reliability.xml'}",
        ],
        cwd=ROOT,
        env=test_env,
        capture_output=True,
        text=True,
        check=False,
    )
    (WORK / "fuzz.log").write_text(completed.stdout + completed.stderr)
    summary = (completed.stdout.strip().splitlines() or ["(no output)"])[-1]
    return completed.returncode, summary, fault_outcomes(WORK / "reliability.xml")


def stats_rows(stats: dict) -> list[str]:
    rows = []
    for variant, expected in stats["expected"].items():
        raw = stats.get("raw", {}).get(variant, {})
        rollup = stats.get("rollup", {}).get(variant, {})
        rows.append(
            f"| stats API, variant `{variant}`: results / users (raw; rollup) vs acknowledged | "
            f"{raw.get('results')} / {raw.get('users')}; {rollup.get('results')} / {rollup.get('users')} vs "
            f"{expected['results']} / {expected['users']} |"
        )
    return rows


def fault_rows(outcomes: dict[str, str]) -> list[str]:
    if not outcomes:
        return ["Outcomes: the fault tests did not run (SOAK_FUZZ_EXAMPLES=0)."]
    rows = ["| fault test | outcome |", "| --- | --- |"]
    rows += [f"| `{name}` | {outcome} |" for name, outcome in sorted(outcomes.items())]
    return rows


def hang_rows(hang: dict) -> list[str]:
    base, hung, calls, breaker = hang["baseline"], hang["hung"], hang["hung_calls"], hang["breaker"]
    return [
        "### An upstream hangs under the soak's server",
        "",
        f"The search provider points at a loopback server that accepts and never answers. For {HANG_WINDOW:.0f} s,",
        f"{UNRELATED_CLIENTS} clients resolve prompts and read `/healthz` back to back, first alone, then while",
        f"{HUNG_CALLS} other clients keep enrichment calls (deadline {HUNG_DEADLINE_MS} ms, below the provider's",
        "5 s timeout) hung on it; then 5 calls with the default deadline (8 s) outlast the provider's timeout",
        f"and open its breaker (fail_max 5), and {FAILFAST_CALLS} more calls are answered by the open breaker.",
        "",
        "| figure | no hung call | hung calls in flight |",
        "| --- | --- | --- |",
        *[
            f"| {label} p50 / p99 / max | "
            + " | ".join(
                f"{run[name + '_p50']:.1f} / {run[name + '_p99']:.1f} / {run.get(name + '_max', 0):.0f} ms"
                for run in (base, hung)
            )
            + " |"
            for name, label in (("resolve", "resolve"), ("healthz", "`/healthz`"))
        ],
        f"| unrelated requests / not 200 / slower than 1 s | {base['requests']} / {base['non_200']} / "
        f"{base.get('over_1s', 0)} | {hung['requests']} / {hung['non_200']} / {hung.get('over_1s', 0)} |",
        "",
        "| enrichment figure | value |",
        "| --- | --- |",
        f"| hung calls answered (200) / made | {calls['status_200']} / {calls['calls']} |",
        f"| their error codes | {fmt_codes(calls['codes'])} |",
        f"| their answer time p50 / max vs deadline | {calls['p50']:.0f} / {calls['max']:.0f} ms vs "
        f"{calls['deadline_ms']} ms |",
        f"| calls opening the breaker: codes, slowest answer | {fmt_codes(breaker['tripping_codes'])}, "
        f"{breaker['tripping_max']:.0f} ms (provider timeout 5000 ms) |",
        f"| calls while open: codes | {fmt_codes(breaker['fast_codes'])} |",
        f"| calls while open: answer p50 / max | {breaker['fast_p50']:.1f} / {breaker['fast_max']:.1f} ms |",
        f"| connections reaching the upstream while open | {breaker['reached_upstream_while_open']} |",
        "",
        "Times are the client's: they include any wait for a free server thread before the view starts",
        "(gunicorn gthread, 4 threads per worker; a connection stays with the worker that accepted it).",
        "A hung call holds its thread until its deadline, so a request accepted by a worker whose threads",
        "are all held can wait up to that deadline; the maximum, not the percentiles, would show it.",
        "",
        "A call cut by its own deadline before the provider's timeout counts against the breaker only",
        "when it had waited ENRICHMENT_SLOW_CALL_SECONDS (3 s): the hung calls above (3 s deadline) stop",
        "just short of it and are not counted, so callers asking for little never open a breaker for",
        "everyone; calls that reach the provider's timeout, or wait longer than 3 s, open it.",
    ]


def fmt_codes(codes: dict[str, int]) -> str:
    return ", ".join(f"{code} x{n}" for code, n in sorted(codes.items())) or "none"


def write_doc(figures: dict) -> None:
    lines = [
        "# Reliability and security figures",
        "",
        f"Written by `make soak` (`bench/soak.py`) on {figures['when']} UTC, on this 2-core machine:",
        f"gunicorn (2 workers x 4 threads, production settings), PostgreSQL database `{DATABASE}`, Redis dbs",
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
        *stats_rows(figures["stats"]),
        f"| **events lost** | **{figures['results_lost'] + figures['audit_lost']}** |",
        "",
        "## Inputs tried",
        "",
        f"- Schemathesis over every operation of `/api/schema/` with each role's credentials, "
        f"{FUZZ_EXAMPLES} examples per operation and role (fixed seed) and the coverage-phase cases of",
        "  every query parameter, plus the hand-written hostile input of",
        "  `tests/reliability/test_hostile_input.py` (every field of every write endpoint x 23 hostile",
        "  values, every query parameter of every GET operation x 30 hostile query values, 11 malformed",
        "  bodies, oversize bodies and batches, markup and formulas through the admin and CSV export):",
        f"  `{figures['fuzz']}`.",
        "",
        "## Faults survived",
        "",
        "Run by the same pass as `tests/reliability`, with every security test `docs/security.md`",
        "names (the fast parts also run in `make test`):",
        "",
        "- Redis (a private `redis-server`) stopped mid-run and restarted: resolve, audit and metrics",
        "  kept answering; exposures buffered before, during and after the outage all reached the",
        "  database; the auth rate limit failed closed; no process restart.",
        "- PostgreSQL cut through a TCP proxy: 503 JSON envelopes with request ids (no HTML, no",
        "  traceback), `/readyz` 503 naming `database`, `/healthz` 200; recovery without restart.",
        "- A Celery worker killed mid-job: a real prefork worker (concurrency 1, acks_late,",
        "  reject_on_worker_lost) on a private `redis-server`, against the test database; the pool",
        "  child running the job is SIGKILLed after the job wrote its report; the message goes back",
        "  to the queue, the replacement child runs the job again (taking over the lock by task id),",
        "  and one report and one successful run remain for the period.",
        "- An upstream provider hangs (accepts, never answers) or answers 500: enrichment answers by",
        "  its deadline with a `timeout` / `upstream_unavailable` error for that part; the breaker",
        "  opens after its configured failures, then answers `unavailable` without reaching the",
        "  upstream, and closes once the upstream is healthy after its reset timeout; resolve and",
        "  `/healthz` keep answering 200 on a live server while hung calls are in flight.",
        "",
        *fault_rows(figures["faults"]),
        "",
        *hang_rows(figures["hang"]),
    ]
    DOC.write_text("\n".join(lines))


def main() -> int:
    env = soak_env()
    port = free_port()
    print(f"soak: preparing database {DATABASE} and Redis dbs {CACHE_DB}/{BROKER_DB}", flush=True)
    prepare(env)
    setup_django(env)
    analyst_token, *keys = seed()
    WORK.mkdir(parents=True, exist_ok=True)
    # The hung upstream: the search provider of the server (set before it starts).
    upstream = ScriptedUpstream(mode="hang")
    env["SEARCH_BASE_URL"] = upstream.url
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
        stats = stats_check(f"http://127.0.0.1:{port}", analyst_token, tally)
        print(f"soak: stats {stats}", flush=True)
        print(f"soak: an upstream hangs ({HANG_WINDOW:.0f} s windows)", flush=True)
        hang = hang_phase(f"http://127.0.0.1:{port}", keys, upstream)
        print(f"soak: hang {hang}", flush=True)
    finally:
        upstream.close()
        server.terminate()
        worker.terminate()
        server.wait(timeout=30)
        worker.wait(timeout=30)
    print("soak: verifying", flush=True)
    figures = verify(tally)
    figures["monitoring_count"] = api_monitoring_count
    figures["stats"] = stats
    figures["hang"] = hang
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
    code, summary, faults = fuzz(env) if FUZZ_EXAMPLES else (0, "skipped (SOAK_FUZZ_EXAMPLES=0)", {})
    figures["fuzz"] = summary
    figures["faults"] = faults
    write_doc(figures)
    print(f"soak: wrote {DOC.relative_to(ROOT)}", flush=True)
    ok = (
        figures["5xx"] == 0
        and figures["results_lost"] == 0
        and figures["audit_lost"] == 0
        and figures["results_duplicates"] == 0
        and figures["audit_duplicates"] == 0
        and figures["monitoring_count"] == figures["operations_acked"]
        and stats["ok"]
        and hang["baseline"]["non_200"] == 0
        and hang["hung"]["non_200"] == 0
        and hang["hung_calls"]["status_200"] == hang["hung_calls"]["calls"]
        and hang["breaker"]["reached_upstream_while_open"] == 0
        and code == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
