"""The queued events and the batch endpoints they go to: one ``Kind`` per queue.

Items are queued as tuples (or ready rows) so that queueing costs the caller next to nothing; the
delivery thread turns them into the endpoints' rows (``agentplatform/ingest.py``'s batch shape on
the platform's side) when it sends them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from agentops_client.delivery import Kind

EXPOSURES_PATH = "/api/v1/experiments/exposures"
SCORES_PATH = "/api/v1/scores"
AUDIT_PATH = "/api/v1/audit/events"
OPERATIONS_PATH = "/api/v1/monitoring/operations"


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def exposure_row(item: tuple) -> dict[str, Any]:
    """(experiment, variant, user id, epoch) -> a row of ``POST experiments/exposures``."""
    experiment, variant, user_id, at = item
    return {"experiment": experiment, "variant": variant, "user_id": user_id, "occurred_at": iso_time(at)}


def results_path(item: tuple) -> str:
    return f"/api/v1/experiments/{quote(item[0], safe='')}/results"


def result_row(item: tuple) -> dict[str, Any]:
    """(experiment, event id, user id, variant, epoch, success, ms, tokens, quality, feedback, model) -> a row."""
    _experiment, event_id, user_id, variant, at, success, response_time_ms, tokens, quality, feedback, model = item
    row: dict[str, Any] = {"event_id": event_id, "user_id": user_id, "variant": variant, "occurred_at": iso_time(at)}
    for name, value in (
        ("success", success),
        ("response_time_ms", response_time_ms),
        ("tokens", tokens),
        ("quality_score", quality),
        ("user_feedback", feedback),
        ("model", model),
    ):
        if value is not None:
            row[name] = value
    return row


def metric_row(item: tuple) -> dict[str, Any]:
    """(operation, ms, success, epoch, event id) -> a row of ``POST monitoring/operations``."""
    operation, duration_ms, success, at, event_id = item
    return {
        "operation": operation,
        "duration_ms": duration_ms,
        "success": success,
        "occurred_at": iso_time(at),
        "event_id": event_id,
    }


def event_kinds() -> tuple[Kind, Kind, Kind, Kind, Kind]:
    """Exposures, results, scores, audit events and metrics (scores and audit events queue ready rows)."""
    return (
        Kind("exposures", lambda item: EXPOSURES_PATH, "exposures", exposure_row),
        Kind("results", results_path, "results", result_row),
        Kind("scores", lambda item: SCORES_PATH, "scores", lambda item: item),
        Kind("audit events", lambda item: AUDIT_PATH, "events", lambda item: item),
        Kind("metrics", lambda item: OPERATIONS_PATH, "operations", metric_row),
    )
