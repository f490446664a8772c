"""The hash chain's arithmetic: canonical content of an event and its SHA-256 link.

The canonical form is JSON with sorted keys and no whitespace over every stored column except the
hash itself, computed from the values as read back from the database (so a JSON round trip
through ``jsonb`` cannot change it). Each hash covers the previous event's hash, so changing,
removing or reordering any sealed row changes every hash after it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

# The hash the first event of a chain links to.
GENESIS_HASH = "0" * 64

# Columns in the order the sealer and the verifier read them.
CHAIN_COLUMNS = (
    "id",
    "event_id",
    "chain_index",
    "occurred_at",
    "recorded_at",
    "actor_id",
    "actor_label",
    "action",
    "resource_type",
    "resource_id",
    "severity",
    "success",
    "request_id",
    "ip",
    "user_agent",
    "details",
    "prev_hash",
    "hash",
)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_content(row: dict[str, Any]) -> str:
    """The canonical text of an event (a dict of ``CHAIN_COLUMNS`` minus the hashes)."""
    content = {
        "id": int(row["id"]),
        "event_id": str(row["event_id"]),
        "chain_index": int(row["chain_index"]),
        "occurred_at": _timestamp(row["occurred_at"]),
        "recorded_at": _timestamp(row["recorded_at"]),
        "actor_id": row["actor_id"],
        "actor_label": row["actor_label"],
        "action": row["action"],
        "resource_type": row["resource_type"],
        "resource_id": row["resource_id"],
        "severity": int(row["severity"]),
        "success": bool(row["success"]),
        "request_id": row["request_id"],
        "ip": row["ip"],
        "user_agent": row["user_agent"],
        "details": row["details"],
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link_hash(row: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) of ``prev_hash`` and the event's canonical content."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_content(row).encode("utf-8"))
    return digest.hexdigest()
