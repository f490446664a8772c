"""DRF fields that accept exactly what the batch endpoints' hand-written validators accept.

The batch endpoints validate rows by hand (a 1,000-row batch must cost far less than its insert)
and describe them for the OpenAPI schema with one serializer each. DRF's own fields are lenient
where the validators are strict (``CharField`` takes a number, ``BooleanField`` takes ``"yes"``,
``IntegerField`` takes ``"5"`` and ``5.0``, ``DateTimeField`` takes a naive time), so the schema
serializers use these instead, and ``tests/agentplatform/test_schema_parity.py`` feeds both the
same corpus and requires the same answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from agentplatform.ingest import clean_text, finite, parse_timestamp, timestamp_problem


class StrictCharField(serializers.CharField):
    """A JSON string only (a number is refused, or with ``integers=True`` taken as its digits), not trimmed."""

    def __init__(self, *, integers: bool = False, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        self.integers = integers
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if self.integers and type(data) is int and abs(data) < 10**18:
            data = str(data)
        if not isinstance(data, str):
            self.fail("invalid")
        problem = clean_text(data)
        if problem:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only (not ``true``, ``"5"`` nor ``5.0``)."""

    def to_internal_value(self, data):
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A finite JSON number (integer or not), never a string or a boolean."""

    def to_internal_value(self, data):
        if type(data) not in (int, float) or not finite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` only (not ``"yes"``, ``1`` nor ``"true"``)."""

    def to_internal_value(self, data):
        if type(data) is not bool:
            self.fail("invalid")
        return data


class StrictChoiceField(serializers.ChoiceField):
    """One of the choices, compared as the JSON value it is (``1`` is not ``"1"``, ``1.0`` is not ``1``)."""

    def to_internal_value(self, data):
        for choice in self.choices:
            if type(choice) is type(data) and choice == data:
                return data
        self.fail("invalid_choice", input=data)


class StrictUUIDField(serializers.UUIDField):
    """A UUID as a string (an integer is refused)."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or len(data) > 40:
            self.fail("invalid", value=data)
        try:
            return uuid.UUID(data)
        except ValueError:
            self.fail("invalid", value=data)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time with a time zone, from 2000 (or the retention) to five minutes ahead.

    ``retention_days`` names the setting holding the retention in days, when the endpoint has one.
    """

    def __init__(self, *, retention_days: str | None = None, **kwargs):
        self.retention_days = retention_days
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        moment = parse_timestamp(value)
        if moment is None:
            self.fail("invalid", format="ISO 8601 with a time zone")
        now = timezone.now()
        oldest = None
        if self.retention_days:
            oldest = now - timedelta(days=getattr(settings, self.retention_days))
        problem = timestamp_problem(moment, now=now, oldest=oldest)
        if problem:
            raise serializers.ValidationError(problem)
        return moment

    def to_representation(self, value):
        return value.isoformat() if isinstance(value, datetime) else value


class StrictInputSerializer(serializers.Serializer):
    """A JSON object with only the declared fields (an unknown one is a 400 naming it)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
        unknown = sorted((str(name)[:100] for name in set(data) - set(self.fields)), key=str)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)
