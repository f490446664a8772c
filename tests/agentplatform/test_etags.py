"""``agentplatform.etags``: the If-None-Match comparison the conditional GETs share."""

from __future__ import annotations

import pytest

from agentplatform.etags import body_etag, etag_matches


@pytest.mark.parametrize(
    ("header", "matches"),
    [('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True), ('"abd"', False), ("", False)],
)
def test_if_none_match_uses_the_weak_comparison(header, matches):
    assert etag_matches(header, '"abc"') is matches


def test_a_body_etag_is_strong_and_names_the_body():
    assert body_etag(b"{}") == body_etag(b"{}")
    assert body_etag(b"{}") != body_etag(b"{ }")
    assert body_etag(b"{}").startswith('"') and not body_etag(b"{}").startswith("W/")
