"""The request body parser every API view uses: DRF's JSON parser, refusing pathological nesting.

Python's json module recurses once per nesting level, so ``[[[[...]]]]`` a few thousand levels
deep raises ``RecursionError`` inside the parser, which DRF does not treat as a parse error (it
became a 500). Here it is a 400 like any other malformed body.
"""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as _DRFJSONParser


class JSONParser(_DRFJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
