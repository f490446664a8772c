"""``{{name}}`` placeholders, compiled as the platform compiles them (``prompts/templating.py``).

A placeholder is a name of letters, digits and ``_`` (not starting with a digit) between double
braces, optionally padded with spaces. A placeholder without a variable stays as it is and is
named in ``missing`` (the platform's resolve refuses such a request; the client never raises).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def variables_of(content: str) -> list[str]:
    """The placeholder names in ``content``, each once, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(content)))


def compile_prompt(content: str, variables: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """``content`` with each placeholder replaced by its variable, and the names left without one."""
    missing = tuple(name for name in variables_of(content) if name not in variables)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return _text(variables[name]) if name in variables else match.group(0)

    return PLACEHOLDER.sub(replace, content), missing


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)
