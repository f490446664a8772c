"""Main-text extraction from HTML pages (trafilatura), keeping the title."""

from __future__ import annotations

from dataclasses import dataclass

import lxml.html
import trafilatura


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str


def extract_article(html: str, *, url: str | None = None) -> Extracted:
    """The page's title and main text without navigation, ads, footers and comments."""
    document = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
    )
    title = (getattr(document, "title", None) or "").strip() if document is not None else ""
    text = (getattr(document, "text", None) or "").strip() if document is not None else ""
    if not title:
        title = _html_title(html)
    return Extracted(title=title, text=text)


def _html_title(html: str) -> str:
    try:
        tree = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return ""
    return " ".join((tree.findtext(".//title") or "").split())
