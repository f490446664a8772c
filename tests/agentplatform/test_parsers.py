"""The platform's JSON parser: DRF's answers (charset, strict JSON), as 400 envelopes, without DRF's per-request
codecs reader and decoder."""

from __future__ import annotations

import bz2
import io
import json

import pytest
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser

from agentplatform.parsers import MAX_DEPTH, JSONParser


def parse(body: bytes, encoding: str = "utf-8", parser=JSONParser):
    return parser().parse(io.BytesIO(body), "application/json", {"encoding": encoding})


@pytest.mark.parametrize(
    "body",
    [
        b'{"user_id": "u-1", "n": 1.5, "ok": true, "none": null}',
        b"[1, 2, 3]",
        '{"name": "한국어 ✓"}'.encode(),
        b"  {}  ",
    ],
)
def test_it_reads_what_drf_reads(body):
    assert parse(body) == parse(body, parser=DRFJSONParser)


def test_the_charset_of_the_content_type_is_honoured():
    assert parse('{"name": "café"}'.encode("latin-1"), "latin-1") == {"name": "café"}


@pytest.mark.parametrize("encoding", ["bz2_codec", "base64_codec", "no-such-charset"])
def test_a_non_text_or_unknown_charset_is_refused_before_decoding(encoding):
    with pytest.raises(ParseError, match="Unsupported charset"):
        parse(bz2.compress(b'{"a": 1}' * 1000), encoding)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": NaN}', "not JSON compliant"),
        (b'{"a": -Infinity}', "not JSON compliant"),
        (b"{", "JSON parse error"),
        (b"", "JSON parse error"),
        (b"\xff\xfe{}", "JSON parse error"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_bodies_are_parse_errors(body, message):
    with pytest.raises(ParseError, match=message):
        parse(body)


def nested(levels: int) -> bytes:
    """``levels`` levels of objects and arrays, alternating: {"a": [{"a": [...]}]}."""
    value: object = "leaf"
    for level in range(levels):
        value = {"a": value} if level % 2 else [value]
    return json.dumps(value).encode()


def test_nesting_is_capped_at_max_depth():
    assert parse(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(ParseError, match=f"nested more than {MAX_DEPTH} levels"):
        parse(nested(MAX_DEPTH + 1))
    with pytest.raises(ParseError, match=f"nested more than {MAX_DEPTH} levels"):
        parse(nested(900))  # parses in C, but would exhaust the stack of a recursive walk later


def test_brackets_inside_strings_and_wide_bodies_are_not_depth():
    wide = [{"k": [i, {"v": "[{" * 50}]} for i in range(2000)]
    assert parse(json.dumps(wide).encode()) == wide


def test_the_lenient_mode_follows_drfs_strict_json_setting(monkeypatch):
    monkeypatch.setattr(JSONParser, "strict", False)
    assert json.dumps(parse(b'{"a": NaN}')) == '{"a": NaN}'


@pytest.mark.parametrize(
    "body",
    [
        rb'{"resource_id": "\ud800"}',  # a high surrogate alone
        rb'{"a": ["ok", {"b": "x\uDC00y"}]}',  # a low one, nested, upper case
        rb'{"\udbff": 1}',  # in a key
        rb'{"a": "\ude00\ud83d"}',  # the two halves in the wrong order
    ],
)
def test_an_unpaired_surrogate_is_a_parse_error(body):
    with pytest.raises(ParseError, match="unpaired surrogate"):
        parse(body)


def test_an_unpaired_surrogate_in_the_raw_text_of_an_odd_charset_is_refused_too():
    with pytest.raises(ParseError, match="unpaired surrogate"):
        parse(b'{"a": "\\ud800"}', "unicode_escape")  # the codec itself makes the surrogate


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (rb'{"a": "\ud83d\ude00"}', "\U0001f600"),  # a pair: one code point (an emoji)
        (rb'{"a": "\\ud800"}', "\\ud800"),  # an escaped backslash: six plain characters
        (rb'{"a": "\u00e9 \uD7FF \uE000"}', "\u00e9 \ud7ff \ue000"),  # around the surrogate range
        ('{"a": "한국어"}'.encode(), "한국어"),
    ],
)
def test_paired_surrogates_and_look_alikes_are_read(body, value):
    assert parse(body) == {"a": value}
