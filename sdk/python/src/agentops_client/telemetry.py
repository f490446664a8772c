"""OpenTelemetry, when installed: the prompt's experiment, variant and version on the current span.

Attribute names: ``agentops.prompt`` (the prompt key), ``agentops.prompt_version`` (its version
number), ``agentops.experiment`` and ``agentops.variant`` (only when the user is in an experiment),
and ``user.id`` (OpenTelemetry's general attribute for the user) unless the span already names one.
The platform's trace ingest reads them to link a trace to the variant it ran and to its user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    from opentelemetry import trace as _trace
except ImportError:  # optional: without it, prompt() sets nothing
    _trace = None

if TYPE_CHECKING:
    from agentops_client.client import Prompt

ATTRIBUTE_PROMPT = "agentops.prompt"
ATTRIBUTE_VERSION = "agentops.prompt_version"
ATTRIBUTE_EXPERIMENT = "agentops.experiment"
ATTRIBUTE_VARIANT = "agentops.variant"
ATTRIBUTE_USER = "user.id"

AVAILABLE = _trace is not None


def annotate_current_span(prompt: Prompt) -> None:
    """Set the prompt's attributes on the current span, if one is recording."""
    span = _trace.get_current_span()  # type: ignore[union-attr]
    if not span.is_recording():
        return
    attributes: dict[str, str | int] = {ATTRIBUTE_PROMPT: prompt.key}
    if prompt.version is not None:
        attributes[ATTRIBUTE_VERSION] = prompt.version
    if prompt.experiment is not None:
        attributes[ATTRIBUTE_EXPERIMENT] = prompt.experiment
        attributes[ATTRIBUTE_VARIANT] = prompt.variant or ""
    existing = getattr(span, "attributes", None) or {}
    if prompt.user_id and ATTRIBUTE_USER not in existing:
        attributes[ATTRIBUTE_USER] = prompt.user_id
    span.set_attributes(attributes)
