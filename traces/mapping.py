"""From an OpenTelemetry span's attributes to a ``Span`` row's fields (docs/traces.md, "Mapping").

The mapping is one table, ``FIELD_RULES``: each row names an attribute, the span field it fills,
how its value is read, and the convention it comes from. For one field the first row whose
attribute the span carries wins, so the current GenAI names are listed before the deprecated ones
and before OpenInference's and OpenLLMetry's. The GenAI conventions are at "Development" stability
(instrumentations switch names with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``):
reading the old names as well is what keeps spans of older and newer instrumentations comparable.

Besides the table:

- the **user** is the first of ``TRACE_USER_ATTRIBUTES`` found on the span, else on its resource;
- the **experiment link** attributes (``agentops.*``) become a ``LinkQuery``;
- **content** (messages, system instructions, tool arguments and results; older instrumentations'
  ``gen_ai.prompt.N.*`` attributes and message events) is kept only when ``TRACE_STORE_CONTENT`` is
  on, with the audit log's secret masking and a size cap, and is never kept among the attributes;
- **every other attribute** of the span and its resource (``service.name``, request parameters,
  ...) goes to ``attributes``, capped at ``TRACE_ATTRIBUTES_MAX_BYTES``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from traces.linking import LinkQuery

# How a rule reads its value.
TEXT = "text"  # a string (numbers and booleans are written as text)
COUNT = "count"  # a non-negative integer token count (an integral float or a numeric string too)

GENAI = "GenAI"
GENAI_OLD = "GenAI, deprecated"
OPENINFERENCE = "OpenInference"
OPENLLMETRY = "OpenLLMetry"

# OpenInference names the kind of work, not the operation: the GenAI operation it corresponds to.
OPENINFERENCE_KINDS = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "CHAIN": "chain",
    "RETRIEVER": "retrieval",
    "RERANKER": "rerank",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluate",
}
# OpenLLMetry's llm.request.type.
OPENLLMETRY_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}


@dataclass(frozen=True, slots=True)
class Rule:
    attribute: str
    field: str
    kind: str
    convention: str
    values: Mapping[str, str] | None = None  # a translation of the value (others are kept as sent)


# The table (docs/traces.md shows it). Order matters within a field: the first found wins.
FIELD_RULES: tuple[Rule, ...] = (
    Rule("gen_ai.operation.name", "operation", TEXT, GENAI),
    Rule("openinference.span.kind", "operation", TEXT, OPENINFERENCE, OPENINFERENCE_KINDS),
    Rule("llm.request.type", "operation", TEXT, OPENLLMETRY, OPENLLMETRY_REQUEST_TYPES),
    Rule("gen_ai.provider.name", "provider", TEXT, GENAI),
    Rule("gen_ai.system", "provider", TEXT, GENAI_OLD),
    Rule("llm.provider", "provider", TEXT, OPENINFERENCE),
    Rule("llm.system", "provider", TEXT, OPENINFERENCE),
    Rule("gen_ai.request.model", "request_model", TEXT, GENAI),
    Rule("llm.request.model", "request_model", TEXT, OPENLLMETRY),
    Rule("gen_ai.response.model", "response_model", TEXT, GENAI),
    Rule("llm.model_name", "response_model", TEXT, OPENINFERENCE),
    Rule("llm.response.model", "response_model", TEXT, OPENLLMETRY),
    Rule("gen_ai.usage.input_tokens", "input_tokens", COUNT, GENAI),
    Rule("gen_ai.usage.prompt_tokens", "input_tokens", COUNT, GENAI_OLD),
    Rule("llm.token_count.prompt", "input_tokens", COUNT, OPENINFERENCE),
    Rule("llm.usage.prompt_tokens", "input_tokens", COUNT, OPENLLMETRY),
    Rule("gen_ai.usage.output_tokens", "output_tokens", COUNT, GENAI),
    Rule("gen_ai.usage.completion_tokens", "output_tokens", COUNT, GENAI_OLD),
    Rule("llm.token_count.completion", "output_tokens", COUNT, OPENINFERENCE),
    Rule("llm.usage.completion_tokens", "output_tokens", COUNT, OPENLLMETRY),
    Rule("gen_ai.usage.cache_read.input_tokens", "cache_read_tokens", COUNT, GENAI),
    Rule("gen_ai.usage.cache_read_input_tokens", "cache_read_tokens", COUNT, OPENLLMETRY),
    Rule("llm.token_count.prompt_details.cache_read", "cache_read_tokens", COUNT, OPENINFERENCE),
    Rule("gen_ai.usage.cache_creation.input_tokens", "cache_write_tokens", COUNT, GENAI),
    Rule("gen_ai.usage.cache_creation_input_tokens", "cache_write_tokens", COUNT, OPENLLMETRY),
    Rule("llm.token_count.prompt_details.cache_write", "cache_write_tokens", COUNT, OPENINFERENCE),
    Rule("gen_ai.usage.reasoning.output_tokens", "reasoning_tokens", COUNT, GENAI),
    Rule("gen_ai.usage.reasoning_tokens", "reasoning_tokens", COUNT, OPENLLMETRY),
    Rule("llm.token_count.completion_details.reasoning", "reasoning_tokens", COUNT, OPENINFERENCE),
    Rule("gen_ai.tool.name", "tool_name", TEXT, GENAI),
    Rule("tool.name", "tool_name", TEXT, OPENINFERENCE),
    Rule("gen_ai.tool.call.id", "tool_call_id", TEXT, GENAI),
    Rule("tool_call.id", "tool_call_id", TEXT, OPENINFERENCE),
    Rule("gen_ai.agent.name", "agent_name", TEXT, GENAI),
    Rule("agent.name", "agent_name", TEXT, OPENINFERENCE),
    Rule("gen_ai.conversation.id", "conversation_id", TEXT, GENAI),
    Rule("error.type", "error_type", TEXT, GENAI),
)
# Span fields the table fills, and the longest text each column holds.
TEXT_LIMITS = {
    "operation": 64,
    "provider": 64,
    "request_model": 200,
    "response_model": 200,
    "tool_name": 200,
    "tool_call_id": 200,
    "agent_name": 200,
    "conversation_id": 200,
    "error_type": 200,
}
COUNT_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
# Operations that call a model: these spans are priced, counted as LLM calls and summed into their
# trace's tokens and cost (an agent span that repeats its children's usage is not summed twice).
MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "completion"})

# The experiment link (traces.linking): attribute -> LinkQuery field.
LINK_ATTRIBUTES = {
    "agentops.experiment": "experiment_key",
    "agentops.variant": "variant_key",
    "agentops.prompt_version": "prompt_version",
    "agentops.prompt": "prompt_type",
}

# Content: whole attributes and the part of the content they fill ...
CONTENT_ATTRIBUTES = {
    "gen_ai.input.messages": "input",
    "gen_ai.output.messages": "output",
    "gen_ai.system_instructions": "system",
    "gen_ai.prompt": "input",  # deprecated: the prompt as one attribute
    "gen_ai.completion": "output",
    "gen_ai.tool.call.arguments": "tool_arguments",
    "gen_ai.tool.call.result": "tool_result",
    "input.value": "input",  # OpenInference
    "output.value": "output",
    "tool.parameters": "tool_arguments",
}
# ... and indexed attribute families (gen_ai.prompt.0.role, llm.input_messages.1.message.content).
CONTENT_PREFIXES = (
    ("gen_ai.prompt.", "input"),
    ("gen_ai.completion.", "output"),
    ("llm.input_messages.", "input"),
    ("llm.output_messages.", "output"),
)
# Span events of older instrumentations that carry one message each: event name -> (part, role).
CONTENT_EVENTS = {
    "gen_ai.system.message": ("input", "system"),
    "gen_ai.user.message": ("input", "user"),
    "gen_ai.assistant.message": ("input", "assistant"),
    "gen_ai.tool.message": ("input", "tool"),
    "gen_ai.choice": ("output", "assistant"),
    "gen_ai.content.prompt": ("input", ""),  # the oldest form: gen_ai.prompt on an event
    "gen_ai.content.completion": ("output", ""),
}
# The event the current conventions use instead: it holds gen_ai.input.messages and friends.
INFERENCE_DETAILS_EVENT = "gen_ai.client.inference.operation.details"

_RULES_BY_ATTRIBUTE: dict[str, tuple[int, Rule]] = {}
for _priority, _rule in enumerate(FIELD_RULES):
    _RULES_BY_ATTRIBUTE.setdefault(_rule.attribute, (_priority, _rule))
_CONTENT_PREFIX_STARTS = tuple(prefix for prefix, _part in CONTENT_PREFIXES)
_MAX_COUNT = 2**63 - 1


def read_count(value: Any) -> int | None:
    """A token count from an attribute value, or None (negative, fractional, not a number)."""
    if type(value) is int:
        return value if 0 <= value <= _MAX_COUNT else None
    if type(value) is float:
        return int(value) if value.is_integer() and 0 <= value <= _MAX_COUNT else None
    if type(value) is str and value.isdigit():
        number = int(value)
        return number if number <= _MAX_COUNT else None
    return None


def read_text(value: Any, limit: int) -> str:
    if type(value) is not str:
        if value is None or isinstance(value, dict | list):
            return ""
        value = json.dumps(value) if type(value) is bool else str(value)
    return value[:limit]


def is_content_attribute(key: str) -> bool:
    return key in CONTENT_ATTRIBUTES or key.startswith(_CONTENT_PREFIX_STARTS)


@dataclass(slots=True)
class Mapped:
    """What the mapping made of one span's attributes."""

    fields: dict[str, Any]  # TEXT_LIMITS' and COUNT_FIELDS' names, present when found
    user_id: str
    link: LinkQuery
    attributes: dict[str, Any]  # the rest, uncapped
    content: dict[str, Any] | None  # None: no content, or content not stored


def map_attributes(
    attributes: Mapping[str, Any],
    *,
    resource_user: str,
    user_attributes: tuple[str, ...],
    store_content: bool,
) -> Mapped:
    """Maps one span's attributes (``resource_user``: the user its resource names, "" if none)."""
    fields: dict[str, Any] = {}
    found: dict[str, int] = {}
    kept: dict[str, Any] = {}
    link: dict[str, Any] = {}
    content: dict[str, Any] | None = {} if store_content else None
    indexed: dict[str, dict[int, dict[str, Any]]] = {}
    rules = _RULES_BY_ATTRIBUTE
    for key, value in attributes.items():
        entry = rules.get(key)
        if entry is not None:
            priority, rule = entry
            if rule.field in found and found[rule.field] <= priority:
                continue
            if rule.kind == COUNT:
                number = read_count(value)
                if number is None:
                    kept[key] = value  # unreadable: kept for inspection, not counted
                    continue
                fields[rule.field] = number
            else:
                text = read_text(value, TEXT_LIMITS[rule.field])
                if rule.values is not None:
                    text = rule.values.get(text, text.lower())[: TEXT_LIMITS[rule.field]]
                fields[rule.field] = text
            found[rule.field] = priority
        elif key in LINK_ATTRIBUTES:
            link[LINK_ATTRIBUTES[key]] = value
        elif key in CONTENT_ATTRIBUTES:
            if content is not None:
                _add_content(content, CONTENT_ATTRIBUTES[key], value)
        elif key.startswith(_CONTENT_PREFIX_STARTS):
            if content is not None:
                _add_indexed(indexed, key, value)
        else:
            kept[key] = value
    user_id = ""
    for name in user_attributes:
        value = attributes.get(name)
        if value is not None and value != "":
            user_id = read_text(value, 200)
            kept.pop(name, None)
            break
    else:
        user_id = resource_user
    if content is not None:
        for part, messages in indexed.items():
            content.setdefault(part, []).extend(messages[index] for index in sorted(messages))
    return Mapped(fields, user_id, _link_query(link, user_id), kept, content or None)


@functools.lru_cache(maxsize=8192)
def _user_query(user_id: str) -> LinkQuery:
    # Most spans name no experiment: one shared (immutable) query per user.
    return LinkQuery(user_id=user_id)


def _link_query(link: dict[str, Any], user_id: str) -> LinkQuery:
    if not link:
        return _user_query(user_id)
    version = link.get("prompt_version")
    if version is not None:
        version = read_count(version)
    return LinkQuery(
        user_id=user_id,
        prompt_type=read_text(link.get("prompt_type"), 100),
        experiment_key=read_text(link.get("experiment_key"), 200),
        variant_key=read_text(link.get("variant_key"), 200),
        prompt_version=version,
    )


def resource_user(attributes: Mapping[str, Any], user_attributes: tuple[str, ...]) -> str:
    """The user a resource names (first of ``user_attributes`` found), or ""."""
    for name in user_attributes:
        value = attributes.get(name)
        if value is not None and value != "":
            return read_text(value, 200)
    return ""


def split_resource(attributes: Mapping[str, Any], user_attributes: tuple[str, ...]) -> dict[str, Any]:
    """A resource's attributes kept on each of its spans: all but its user and its content (the
    experiment link is read from span attributes only; ``agentops.*`` on a resource stays here)."""
    return {
        key: value for key, value in attributes.items() if key not in user_attributes and not is_content_attribute(key)
    }


def _decoded(value: Any) -> Any:
    # gen_ai.input.messages and friends are JSON text on most exporters (attributes are flat).
    if type(value) is str and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _add_content(content: dict[str, Any], part: str, value: Any) -> None:
    value = _decoded(value)
    if part in ("input", "output"):
        existing = content.setdefault(part, [])
        if isinstance(value, list):
            existing.extend(value)
        else:
            existing.append(value)
    else:
        content[part] = value


def _add_indexed(indexed: dict[str, dict[int, dict[str, Any]]], key: str, value: Any) -> None:
    for prefix, part in CONTENT_PREFIXES:
        if key.startswith(prefix):
            rest = key[len(prefix) :]
            number, _, name = rest.partition(".")
            if not number.isdigit() or not name:
                return
            if name.startswith("message."):  # OpenInference: llm.input_messages.0.message.role
                name = name[len("message.") :]
            indexed.setdefault(part, {}).setdefault(int(number), {})[name] = _decoded(value)
            return


def event_content(content: dict[str, Any], name: str, attributes: Mapping[str, Any]) -> None:
    """Adds a span event's message to ``content`` (events that carry none add nothing)."""
    if name == INFERENCE_DETAILS_EVENT:
        for key, value in attributes.items():
            if key in CONTENT_ATTRIBUTES:
                _add_content(content, CONTENT_ATTRIBUTES[key], value)
        return
    part, role = CONTENT_EVENTS[name]
    message = {key.removeprefix("gen_ai."): _decoded(value) for key, value in attributes.items()}
    if role and "role" not in message:
        message["role"] = role
    content.setdefault(part, []).append(message)


def is_content_event(name: str) -> bool:
    return name in CONTENT_EVENTS or name == INFERENCE_DETAILS_EVENT


def is_model_call(operation: str, model: str, has_usage: bool) -> bool:
    """Whether a span called a model: a model operation, or (no operation named) a model with usage."""
    if operation:
        return operation in MODEL_OPERATIONS
    return bool(model) and has_usage
