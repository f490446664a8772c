"""The agent SDK (``sdk/python``): prompt() and result() in process, 100,000 results delivered.

Figures and their baselines (measured in the same run):
- ``ops.prompt()`` µs per call, steady state (returning users, no variables), against the
  server's own ``prompt_resolve()`` in this process on the same experiment and users; and for
  first-seen users (bucketing and the exposure queued) against ``prompt_resolve()``'s first call;
- ``ops.result()`` µs to enqueue;
- seconds for 100,000 results queued by one client to be stored (exactly once, counted in the
  database), against the same 100 batches of 1,000 rows posted back to back by a bare httpx client.
"""

from __future__ import annotations

import time
from statistics import median

RUNS = 5
RESULTS = 100_000


def _per_call_us(call, users: list[str], calls: int) -> float:
    """Median over ``RUNS`` runs of this thread's CPU time per call (robust to the shared host's load)."""
    figures = []
    for _ in range(RUNS):
        started = time.thread_time()
        for i in range(calls):
            call(users[i % len(users)])
        figures.append((time.thread_time() - started) / calls * 1e6)
    return median(figures)


def _per_call_us_once(call, users: list[str]) -> float:
    """This thread's CPU time per call, one call per user."""
    started = time.thread_time()
    for user in users:
        call(user)
    return (time.thread_time() - started) / len(users) * 1e6


def _client(bench, **options):
    from agentops_client import AgentOps

    key = bench.agent_headers()["Authorization"].removeprefix("Api-Key ")
    return AgentOps(bench.base_url, key, timeout=30, init_timeout=30, **options)


def _wait_for_experiment(ops, prompt_type: str, user: str) -> None:
    """The servers see a new experiment within a second (the snapshot's version check)."""
    for _ in range(50):
        if ops.prompt(prompt_type, user_id=user).source == "experiment":
            return
        time.sleep(0.2)
        ops.refresh()
    raise RuntimeError("the SDK never saw the bench experiment")


def _in_process(bench, users: list[str]) -> None:
    from bench.scenarios.experiments import PROMPT_TYPE
    from experiments.services.resolve import prompt_resolve

    calls = max(20_000, int(200_000 * bench.scale))
    ops = _client(bench, refresh_interval=3600)
    try:
        _wait_for_experiment(ops, PROMPT_TYPE, users[0])
        for user in users:  # first pass: exposures queued once, answers memoised
            ops.prompt(PROMPT_TYPE, user_id=user)
            prompt_resolve(user_id=user, prompt_type=PROMPT_TYPE)
        server = _per_call_us(lambda user: prompt_resolve(user_id=user, prompt_type=PROMPT_TYPE), users, calls)
        client = _per_call_us(lambda user: ops.prompt(PROMPT_TYPE, user_id=user), users, calls)
        bench.record(
            "ops.prompt() in process (returning users, no variables)",
            client,
            "µs/call",
            baseline=server,
            baseline_name="the server's prompt_resolve() in process, same experiment and users",
            target="≤ 10 µs; ≤ 2x prompt_resolve()",
            note=f"CPU time of the calling thread, median of {RUNS} runs of {calls} calls over {len(users)} users; "
            "zero network calls (the payload is in memory)",
        )
        # First-seen users: the bucketing itself and the exposure queued, one call per new user.
        fresh_users = [f"sdk-new-{run}-{i}" for run in range(RUNS + 1) for i in range(len(users))]
        runs = [fresh_users[i * len(users) : (i + 1) * len(users)] for i in range(RUNS + 1)]
        first_client = median(
            _per_call_us_once(lambda user: ops.prompt(PROMPT_TYPE, user_id=user), batch) for batch in runs[:RUNS]
        )
        first_server = median(
            _per_call_us_once(lambda user: prompt_resolve(user_id=user, prompt_type=PROMPT_TYPE), batch)
            for batch in runs[1:]
        )
        bench.record(
            "ops.prompt() in process, first-seen users",
            first_client,
            "µs/call",
            baseline=first_server,
            baseline_name="the server's prompt_resolve() for first-seen users (its exposure buffered)",
            note=f"CPU time, median of {RUNS} runs of {len(users)} new users each: bucketing, the answer "
            "memoised and the exposure queued",
        )
        answers = [ops.prompt(PROMPT_TYPE, user_id=user) for user in users]
        enqueue = _per_call_us(lambda user: ops.result(answers[0], success=True, response_time_ms=812), users, 20_000)
        bench.record(
            "ops.result() to enqueue",
            enqueue,
            "µs/call",
            target="≤ 5 µs",
            note=f"CPU time of the calling thread, median of {RUNS} runs of 20000 calls; "
            "delivered by the client's thread meanwhile",
        )
        ops.flush(timeout=120)
    finally:
        ops.close()


def _bare_batches(bench, answers, prefix: str) -> float:
    """Seconds for a bare httpx client to post the same 100 batches of 1,000 rows back to back."""
    import httpx

    from bench.scenarios.experiments import KEY

    rows = [
        {"event_id": f"{prefix}-{i}", "user_id": a.user_id, "variant": a.variant, "success": True}
        for i, a in enumerate(answers[i % len(answers)] for i in range(RESULTS))
    ]
    with httpx.Client(base_url=bench.base_url, headers=bench.agent_headers(), timeout=60) as http:
        started = time.perf_counter()
        for start in range(0, RESULTS, 1000):
            response = http.post(f"/api/v1/experiments/{KEY}/results", json={"results": rows[start : start + 1000]})
            assert response.json()["accepted"] == 1000, response.text
        return time.perf_counter() - started


def _delivery(bench, users: list[str]) -> None:
    from bench.scenarios.experiments import PROMPT_TYPE
    from experiments.models import Result

    ops = _client(bench, refresh_interval=3600)
    try:
        _wait_for_experiment(ops, PROMPT_TYPE, users[0])
        answers = [ops.prompt(PROMPT_TYPE, user_id=user) for user in users]
        ops.flush(timeout=120)  # the exposures: not part of the figure
        started = time.perf_counter()
        for i in range(RESULTS):
            ops.result(answers[i % len(answers)], success=i % 2 == 0, response_time_ms=800 + i % 400)
        queued = time.perf_counter() - started
        delivered = ops.flush(timeout=300)
        elapsed = time.perf_counter() - started
        stored = Result.objects.filter(event_id__startswith=f"{ops.client_id}-").count()
        health = ops.health()
    finally:
        ops.close()
    baseline = _bare_batches(bench, answers, f"bare-{int(time.time())}")
    bench.record(
        "100,000 results from one client, stored",
        elapsed,
        "s",
        baseline=baseline,
        baseline_name="the same 100 batches of 1,000 rows posted back to back by a bare httpx client",
        target="< 10 s; each exactly once",
        note=f"{stored} rows stored for {RESULTS} sent (flush {'completed' if delivered else 'timed out'}); "
        f"{health['delivered']['results']} accepted, {health['duplicates']['results']} duplicates, "
        f"{health['dropped']['results']} dropped, {health['retries']} retries; queueing took {queued:.2f} s",
    )


def run(bench) -> None:
    from bench.scenarios.experiments import _ensure_experiment

    bench.setup_django()
    _ensure_experiment()
    users = [f"sdk-user-{i}" for i in range(max(1000, int(10_000 * bench.scale)))]
    _in_process(bench, users)
    _delivery(bench, users)
