"""agentplatform.query: bounded query-parameter serializers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from agentplatform.errors import ValidationFailed
from agentplatform.query import EARLIEST, LATEST, MAX_OFFSET, QueryDateTimeField, QueryParameters


class Window(QueryParameters):
    since = QueryDateTimeField(required=False)
    until = QueryDateTimeField(required=False, require_timezone=True)
    name = serializers.CharField(required=False, max_length=20)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET)


def parse(query_string: str) -> dict:
    request = Request(APIRequestFactory().get("/x?" + query_string))
    return dict(Window.from_request(request).validated_data)


def refused(query_string: str) -> dict:
    request = Request(APIRequestFactory().get("/x?" + query_string))
    with pytest.raises((serializers.ValidationError, ValidationFailed)) as caught:
        Window.from_request(request)
    error = caught.value
    return error.detail if isinstance(error, serializers.ValidationError) else error.details


def test_valid_parameters_are_parsed():
    assert parse("since=2026-01-02T03:04:05Z&name=abc&offset=7") == {
        "since": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "name": "abc",
        "offset": 7,
    }


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59%2B00:00", "0001-01-01T00:00:00%2B00:00", "0001-01-01T00:00:00%2B05:00", "3000-01-01"]
)
def test_date_times_outside_the_range_are_refused(value):
    assert "since" in refused(f"since={value}")


def test_the_range_bounds_are_earliest_inclusive_latest_exclusive():
    assert parse("since=1970-01-01T00:00:00Z")["since"] == EARLIEST
    assert "since" in refused("since=" + LATEST.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_a_naive_date_time_is_utc_unless_a_time_zone_is_required():
    assert parse("since=2026-01-01T00:00:00")["since"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert "time zone" in str(refused("until=2026-01-01T00:00:00")["until"])


@pytest.mark.parametrize("value", ["a%00b", "%00"])
def test_nul_in_a_string_is_refused(value):
    assert "name" in refused(f"name={value}")


@pytest.mark.parametrize("value", ["%ED%A0%80", "%C0%80", "%FF"])
def test_a_query_string_that_is_not_utf8_is_refused(value):
    assert "query" in refused(f"name={value}")


def test_integers_past_the_bound_are_refused():
    assert "offset" in refused("offset=99999999999999999999")
    assert parse(f"offset={MAX_OFFSET}")["offset"] == MAX_OFFSET


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        (serializers.CharField(), "max_length"),
        (serializers.IntegerField(min_value=0), "max_value"),
        (serializers.FloatField(max_value=1.0), "min_value"),
        (serializers.DateTimeField(), "QueryDateTimeField"),
        (serializers.ListField(child=serializers.IntegerField()), "not a query parameter type"),
    ],
)
def test_an_unbounded_parameter_cannot_be_declared(field, reason):
    with pytest.raises(TypeError, match=reason):
        type("Unbounded", (QueryParameters,), {"value": field})


def test_an_empty_value_is_refused_unless_the_field_allows_blanks():
    assert "since" in refused("since=")
    assert "name" in refused("name=")

    class Blankable(QueryParameters):
        name = serializers.CharField(required=False, allow_blank=True, max_length=5)

    request = Request(APIRequestFactory().get("/x?name="))
    assert Blankable.from_request(request).validated_data == {"name": ""}
