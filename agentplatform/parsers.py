"""The request body parser every API view uses: DRF's JSON parser, faster and refusing pathological nesting.

- Python's json module recurses once per nesting level, so ``[[[[...]]]]`` a few thousand levels
  deep raises ``RecursionError`` inside the parser, which DRF does not treat as a parse error (it
  became a 500). Here it is a 400 like any other malformed body.
- DRF's parser wraps the stream in a ``codecs`` reader and builds a new ``JSONDecoder`` for every
  request (``json.load`` with keyword arguments does); agents send a small JSON body on every turn,
  so this one reads the bytes once, decodes them in C, and reuses one decoder. Same answers: the
  request's charset, and DRF's ``STRICT_JSON`` refusal of ``NaN`` and ``Infinity``.
"""

from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as _DRFJSONParser
from rest_framework.parsers import get_encoding
from rest_framework.utils.json import strict_constant

_STRICT = json.JSONDecoder(parse_constant=strict_constant)
_LENIENT = json.JSONDecoder()


class JSONParser(_DRFJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # DRF's check: a text codec only (no bz2_codec decompressing a small body without bound).
        encoding = get_encoding(parser_context or {})
        decoder = _STRICT if self.strict else _LENIENT
        try:
            text = stream.read().decode(encoding)
            return decoder.decode(text)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise ParseError(f"JSON parse error - {exc}") from None
