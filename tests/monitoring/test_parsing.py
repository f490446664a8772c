"""monitoring/parsing.py: the fast path of a batch and the row-by-row validator give the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitoring import parsing
from tests.agentplatform.test_schema_parity import corpus


def test_agent_runs_fast_path_gives_every_row_the_answer_of_the_row_by_row_validator():
    now = datetime.now(UTC)
    oldest = now - timedelta(days=30)
    newest = now + timedelta(seconds=parsing.MAX_FUTURE_SKEW_SECONDS)
    valid = {
        "run_id": "r-81",
        "agent": "support-bot",
        "workflow": "refund",
        "steps": 7,
        "retry_count": 2,
        "no_progress_count": 1,
        "critic_score": 0.82,
        "tokens": 1200,
        "outcome": "success",
        "started_at": (now - timedelta(minutes=3)).isoformat(),
        "finished_at": (now - timedelta(minutes=2)).isoformat(),
    }
    rows = [row for _, row in corpus(valid)]
    rows += [
        {**valid, "started_at": valid["finished_at"], "finished_at": valid["started_at"]},  # ends before it starts
        {**valid, "critic_score": float("nan")},
        {**valid, "critic_score": 7},
        {**valid, "agent": None},
    ]
    accepted = rejected = 0
    for row in rows:
        try:
            expected = ("stored", parsing._agent_run_row(row, oldest=oldest, now=now, newest=newest))
            accepted += 1
        except parsing._Reject as reject:
            expected = (
                "rejected",
                {reject.field or "non_field_errors": [{"code": reject.code, "message": reject.message}]},
            )
            rejected += 1
        stored, errors = parsing.parse_agent_runs([row], oldest=oldest, now=now)
        got = ("stored", stored[0]) if stored else ("rejected", errors[0].errors)
        assert got == expected, row
    assert accepted > 5 and rejected > 100  # the corpus holds both answers


def test_agent_runs_sharing_a_timestamp_each_get_its_value():
    now = datetime.now(UTC)
    started = (now - timedelta(minutes=5)).isoformat()
    runs = [
        {
            "run_id": f"r-{i}",
            "workflow": "refund",
            "steps": i,
            "retry_count": 0,
            "no_progress_count": 0,
            "tokens": 10,
            "outcome": "success",
            "started_at": started,
            "finished_at": (now - timedelta(minutes=i)).isoformat(),
        }
        for i in range(1, 4)
    ]
    rows, errors = parsing.parse_agent_runs(runs, oldest=now - timedelta(days=1), now=now)
    assert errors == []
    assert [(row.steps, row.started_at, row.finished_at) for row in rows] == [
        (i, now - timedelta(minutes=5), now - timedelta(minutes=i)) for i in range(1, 4)
    ]
