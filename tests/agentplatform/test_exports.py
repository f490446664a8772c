"""agentplatform/exports.py: formula-safe cells and streaming CSV."""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse

from agentplatform.exports import csv_lines, csv_safe, restore_cell, stream_csv, write_csv


@pytest.mark.parametrize("dangerous", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "\nx", '=HYPERLINK("x")'])
def test_csv_safe_prefixes_formula_cells_with_an_apostrophe(dangerous):
    assert csv_safe(dangerous) == "'" + dangerous


@pytest.mark.parametrize("plain", ["hello", "a=b", "1+1", "user@example.com", ""])
def test_csv_safe_leaves_ordinary_text_alone(plain):
    assert csv_safe(plain) == plain


@pytest.mark.parametrize("text", ["=x", "'=x", "''=x", "'", "'quoted'", "-1", "plain", "", "\nx"])
def test_the_escape_is_reversible_so_archives_keep_the_exact_text(text):
    assert restore_cell(csv_safe(text)) == text
    assert csv_safe("'=x") != csv_safe("=x")


def test_csv_safe_writes_numbers_as_numbers_even_when_negative():
    assert csv_safe(-3) == "-3"
    assert csv_safe(-2.5) == "-2.5"
    assert csv_safe(Decimal("-1.10")) == "-1.10"


def test_csv_safe_renders_none_bools_dates_and_json():
    assert csv_safe(None) == ""
    assert csv_safe(True) == "true"
    assert csv_safe(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)) == "2026-01-02T03:04:05+00:00"
    assert csv_safe({"b": 1, "a": "x"}) == '{"a":"x","b":1}'


def test_csv_safe_neutralises_json_and_objects_that_render_as_formulas():
    class Sneaky:
        def __str__(self):
            return "=cmd|' /C calc'!A0"

    assert csv_safe(Sneaky()).startswith("'=")


def test_stream_csv_returns_a_streaming_attachment_of_neutralised_rows():
    response = stream_csv(iter([["=evil()", 1], ["ok", -1]]), ["name", "value"], filename="x y.csv")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="xy.csv"'
    body = b"".join(response.streaming_content).decode()
    assert list(csv.reader(io.StringIO(body))) == [["name", "value"], ["'=evil()", "1"], ["ok", "-1"]]


def test_csv_lines_consumes_a_generator_lazily_in_pieces():
    produced = 0

    def rows():
        nonlocal produced
        for i in range(100_000):
            produced += 1
            yield [i, "x" * 20]

    pieces = csv_lines(rows(), ["i", "x"])
    next(pieces)
    # The first piece is yielded long before the generator is exhausted: memory stays flat.
    assert produced < 10_000


def test_write_csv_counts_data_rows_and_writes_the_same_text():
    buffer = io.StringIO()
    count = write_csv(buffer, [["a", 1], ["b", 2]], ["k", "v"])
    assert count == 2
    assert buffer.getvalue() == "k,v\r\na,1\r\nb,2\r\n"


@pytest.mark.django_db
def test_stream_csv_iterates_a_queryset_in_chunks(django_user_model):
    for i in range(5):
        django_user_model.objects.create(username=f"u{i}")
    response = stream_csv(django_user_model.objects.order_by("id").values_list("username"), ["username"], chunk_size=2)
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines() == ["username", "u0", "u1", "u2", "u3", "u4"]
