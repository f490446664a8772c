"""Prompt templates: ``{{name}}`` placeholders and nothing else (no logic, no escaping rules).

A placeholder is a name of letters, digits and ``_`` (not starting with a digit) between double
braces, with optional spaces inside: ``{{ name }}``. Anything else in braces is literal text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class MissingVariables(ValueError):
    """Compiling needs variables that were not given; ``names`` lists them in order of appearance."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"Missing variable(s): {', '.join(names)}.")


def variables_of(content: str) -> list[str]:
    """The placeholder names in ``content``, each once, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(content)))


def compile_prompt(content: str, variables: Mapping[str, Any]) -> str:
    """``content`` with every placeholder replaced by its variable (``str()`` of the value).

    Raises ``MissingVariables`` naming every placeholder without a variable; extra variables are
    ignored (an agent may send the same set to several prompts).
    """
    missing = [name for name in variables_of(content) if name not in variables]
    if missing:
        raise MissingVariables(missing)
    return PLACEHOLDER.sub(lambda match: _text(variables[match.group(1)]), content)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def normalise_newlines(text: str) -> str:
    """``\\n`` line ends: browsers submit text areas with ``\\r\\n``, API clients send ``\\n``.

    The admin's forms pass prompt text through this, so the same text typed in the admin and sent
    through the API is one version (one content hash), and agents get ``\\n`` either way.
    """
    return text.replace("\r\n", "\n").replace("\r", "\n")
