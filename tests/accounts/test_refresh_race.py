"""20 parallel refreshes of one refresh token: one wins, the rest are reuse (needs concurrent transactions)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from accounts.tokens import token_pair_for, token_refresh
from agentplatform.errors import AuthenticationRequired

PARALLEL = 20


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises writers; the race needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_refreshes_of_one_token_let_exactly_one_succeed(user_factory, audit_events):
    user = user_factory(role="operator")
    refresh = token_pair_for(user)["refresh"]
    barrier = threading.Barrier(PARALLEL)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt():
        try:
            barrier.wait()
            try:
                token_refresh(raw_refresh=refresh)
                outcome = "ok"
            except AuthenticationRequired as exc:
                outcome = exc.code
            with lock:
                outcomes.append(outcome)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert outcomes.count("ok") == 1
    assert outcomes.count("token_reused") == PARALLEL - 1
    events = audit_events.of("auth.refresh_reuse_detected")
    assert len(events) == PARALLEL - 1
    # The reuse revoked every token of the user once (the winner's new pair too), not 19 times.
    assert [event["details"]["everything_revoked"] for event in events].count(True) == 1
    user.refresh_from_db()
    assert user.token_version == 1
