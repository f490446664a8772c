"""YouTube transcripts, served through Supadata's transcript endpoint."""

from __future__ import annotations

import re

from enrichment.providers.supadata import SupadataProvider

_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_URL_PATTERNS = (
    re.compile(r"^https?://(?:www\.|m\.|music\.)?youtube\.com/watch\?(?:.*&)?v=([A-Za-z0-9_-]{11})(?:[&#].*)?$"),
    re.compile(r"^https?://(?:www\.|m\.)?youtube\.com/(?:shorts|embed|live)/([A-Za-z0-9_-]{11})(?:[?#/].*)?$"),
    re.compile(r"^https?://youtu\.be/([A-Za-z0-9_-]{11})(?:[?#/].*)?$"),
)


def video_id(value: str) -> str | None:
    """The 11-character video id in a bare id or a YouTube URL, else None."""
    value = value.strip()
    if _VIDEO_ID.match(value):
        return value
    for pattern in _URL_PATTERNS:
        match = pattern.match(value)
        if match:
            return match.group(1)
    return None


def video_url(video: str) -> str:
    return f"https://www.youtube.com/watch?v={video}"


class YoutubeTranscriptProvider(SupadataProvider):
    kind = "youtube"
