"""The request body parser every API view uses: DRF's JSON parser, faster and refusing pathological nesting.

- Nesting is capped at ``MAX_DEPTH`` levels (a 400 past it). Python's json module recurses once
  per level, so ``[[[[...]]]]`` a few thousand levels deep raises ``RecursionError`` inside the
  parser, which DRF does not treat as a parse error (it became a 500); and a body just shallow
  enough to parse could still exhaust the stack in any later recursive walk of the value (a
  serializer's validation, a masking pass). With the cap, everything after the parser may recurse.
- DRF's parser wraps the stream in a ``codecs`` reader and builds a new ``JSONDecoder`` for every
  request (``json.load`` with keyword arguments does); agents send a small JSON body on every turn,
  so this one reads the bytes once, decodes them in C, and reuses one decoder. Same answers: the
  request's charset, and DRF's ``STRICT_JSON`` refusal of ``NaN`` and ``Infinity``.
- A string holding an unpaired surrogate (the escape ``"\ud800"`` without its partner) is refused:
  it is not text (RFC 7493, I-JSON, forbids it), UTF-8 cannot encode it, and PostgreSQL cannot store
  it, so it would otherwise fail as a 500 wherever the value is written, logged or sent on.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as _DRFJSONParser
from rest_framework.parsers import get_encoding
from rest_framework.utils.json import strict_constant

# Levels of objects and arrays a body may nest (the top-level value is the first): far more than
# any request of the API needs, far fewer than the interpreter's recursion limit.
MAX_DEPTH = 64
_STRICT = json.JSONDecoder(parse_constant=strict_constant)
_LENIENT = json.JSONDecoder()
# Bodies rarely hold a \u escape at all: one substring scan decides whether the value is walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _holds_unpaired_surrogate(text: str, data: Any, encoding: str) -> bool:
    # Raw in the decoded text (only an odd charset such as unicode_escape lets one through: UTF-8,
    # the usual one, and UTF-16 refuse them), then from an escape, which the decoder turns into a
    # surrogate unless it is one half of a pair.
    if not text.isascii() and codecs.lookup(encoding).name != "utf-8":
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None and _unpaired_surrogate(data) is not None


def _too_deep(text: str, data: Any) -> bool:
    """Whether ``data`` nests more than ``MAX_DEPTH`` levels (walked level by level, no recursion).

    A batch of 1,000 events is walked in a third to a half of the time its decoding takes; a body with
    no more brackets than ``MAX_DEPTH`` (most requests) is not walked at all.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # an upper bound of the depth, counted in C
        return False
    level = [data] if type(data) is dict or type(data) is list else []
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            return True
        below = []
        for value in level:
            for child in value.values() if type(value) is dict else value:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
        depth += 1
    return False


def _unpaired_surrogate(value: Any) -> str | None:
    """The first string (or key) of ``value`` that UTF-8 cannot encode, if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    if isinstance(value, dict):
        items = (part for pair in value.items() for part in pair)
    elif isinstance(value, list):
        items = iter(value)
    else:
        return None
    for item in items:
        found = _unpaired_surrogate(item)
        if found is not None:
            return found
    return None


class JSONParser(_DRFJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # DRF's check: a text codec only (no bz2_codec decompressing a small body without bound).
        encoding = get_encoding(parser_context or {})
        decoder = _STRICT if self.strict else _LENIENT
        try:
            text = stream.read().decode(encoding)
            data = decoder.decode(text)
            if _too_deep(text, data):
                raise ParseError(f"JSON parse error - the body is nested more than {MAX_DEPTH} levels deep.")
            if _holds_unpaired_surrogate(text, data, encoding):
                raise ParseError("JSON parse error - a string holds an unpaired surrogate (\\ud800-\\udfff).")
            return data
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise ParseError(f"JSON parse error - {exc}") from None
