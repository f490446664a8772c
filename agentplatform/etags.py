"""Conditional GETs: the ``If-None-Match`` comparison the endpoints that serve ETags share."""

from __future__ import annotations

import hashlib

from django.utils.http import parse_etags


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison (RFC 9110 13.1.2): ``W/"x"`` matches ``"x"``."""
    tags = parse_etags(header)
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def body_etag(body: bytes) -> str:
    """A strong ETag naming ``body`` (the first 128 bits of its SHA-256)."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'
