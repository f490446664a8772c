"""Telling every process that the registry changed (a label moved, a version was added).

The resolve hot path and the label endpoint serve the registry from a per-process copy; a change
publishes a new shared version once its transaction commits, and each process reloads when it
sees the new version (at most ``EXPERIMENTS_SNAPSHOT_CHECK_SECONDS`` later).
"""

from __future__ import annotations

from experiments.snapshot import snapshot_invalidate


def registry_changed() -> None:
    """Publish a new registry version after the current transaction commits."""
    snapshot_invalidate()
