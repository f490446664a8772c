"""Query-string parameters: every API view reads its own through one ``QueryParameters`` serializer.

A query string is text the caller controls entirely, and most of it ends up in SQL. Read by hand,
a NUL byte reached PostgreSQL's text comparison (a ``DataError``: a 500), an offset past 2**63 its
bigint arithmetic, and a date at the edge of Python's range overflowed as soon as a default window
was subtracted from it. A ``QueryParameters`` subclass refuses all of that with the 400 envelope
before the view runs, and refuses at import time to declare a parameter that could let it through:

- strings are DRF ``CharField``s (which refuse NUL and lone surrogates) with a ``max_length``;
- numbers have a ``min_value`` and a ``max_value``;
- date-times are ``QueryDateTimeField``s, between ``EARLIEST`` and ``LATEST``;
- choices and booleans are closed sets already; nothing else (lists, nested objects) is allowed;
- an empty value is refused unless the field allows blanks (DRF would read it as absent, which
  the schema does not say).

    class ReportListQuerySerializer(QueryParameters):
        since = QueryDateTimeField(required=False)
        offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, default=0)

    params = ReportListQuerySerializer.from_request(request).validated_data

The view declares the same class to drf-spectacular (``extend_schema(parameters=[...])``), so the
documented parameters are the validated ones.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from urllib.parse import unquote_to_bytes

from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from agentplatform.errors import ValidationFailed

# Date-times a query may name. Nothing the platform stores predates the Unix epoch; the upper
# bound leaves centuries of headroom below Python's year 9999 for "since + window" arithmetic.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)

# Row offsets and other counts: PostgreSQL's integer, far past any table here, far below the
# bigint that OFFSET + LIMIT must fit in.
MAX_OFFSET = 2**31 - 1


class QueryDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time between ``EARLIEST`` (inclusive) and ``LATEST`` (exclusive).

    ``require_timezone=True`` refuses a naive value instead of reading it as UTC.
    """

    default_error_messages = {
        "out_of_range": f"Must be on or after {EARLIEST:%Y-%m-%d} and before {LATEST:%Y-%m-%d} (UTC).",
        "naive": "Include a time zone (Z or +hh:mm).",
    }

    def __init__(self, *, require_timezone: bool = False, **kwargs):
        self.require_timezone = require_timezone
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if self.require_timezone and isinstance(value, str):
            with contextlib.suppress(ValueError):  # malformed: the parent says how
                parsed = parse_datetime(value)
                if parsed is not None and parsed.tzinfo is None:
                    self.fail("naive")
        moment = super().to_internal_value(value)
        if not EARLIEST <= moment < LATEST:
            self.fail("out_of_range")
        return moment


def _require_utf8(query_string: str) -> None:
    """Refuse a query string whose percent-escapes are not UTF-8.

    Django decodes such bytes (an unpaired surrogate in CESU-8, an overlong NUL, 0xFF) to U+FFFD,
    so the serializer would see valid text that the caller never sent.
    """
    try:
        raw = query_string.encode("iso-8859-1")  # WSGI hands the bytes over as Latin-1 text
    except UnicodeEncodeError:  # built in-process (test clients) from text already decoded
        raw = query_string.encode("utf-8", "surrogatepass")
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed(
            "The query string is not valid UTF-8.", details={"query": ["Percent-encode UTF-8 bytes only."]}
        ) from None


def _unbounded(field: serializers.Field) -> str | None:
    """Why ``field`` may not read a query parameter, or None when it may."""
    if isinstance(field, serializers.DateTimeField | serializers.DateField):
        return None if isinstance(field, QueryDateTimeField) else "use QueryDateTimeField"
    if isinstance(field, serializers.IntegerField | serializers.FloatField | serializers.DecimalField):
        return None if field.min_value is not None and field.max_value is not None else "set min_value and max_value"
    if isinstance(field, serializers.CharField):  # RegexField, EmailField... included
        return None if field.max_length is not None else "set max_length"
    if isinstance(field, serializers.ChoiceField | serializers.BooleanField):
        return None
    return f"{type(field).__name__} is not a query parameter type"


class QueryParameters(serializers.Serializer):
    """Base of a view's query-parameter serializer (see the module docstring)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, field in cls._declared_fields.items():
            if (reason := _unbounded(field)) is not None:
                raise TypeError(f"{cls.__name__}.{name}: {reason} (agentplatform.query)")

    def to_internal_value(self, data):
        # DRF reads an empty value of an optional parameter as an absent one; the schema says
        # a value is at least one character (or names "" among its choices), and so does this.
        blank = {
            name: ["Leave the parameter out rather than sending it empty."]
            for name, field in self.fields.items()
            if data.get(name) == "" and not getattr(field, "allow_blank", False)
        }
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)

    @classmethod
    def from_request(cls, request, **kwargs) -> QueryParameters:
        """The validated parameters of ``request``; a 400 envelope naming each bad one otherwise."""
        _require_utf8(request.META.get("QUERY_STRING", ""))
        query = cls(data=request.query_params, **kwargs)
        query.is_valid(raise_exception=True)
        return query


def limit_offset_page(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of a ``LimitOffsetPagination`` page of ``item``: ``{count, next, previous, results}``.

    ``name`` is the OpenAPI component's name (one per item type).
    """
    return type(
        name,
        (serializers.Serializer,),
        {
            "__doc__": f"A page of {item.__name__.removesuffix('Serializer')} (limit/offset).",
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )
