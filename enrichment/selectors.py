"""Reads: full-text search over collected documents."""

from __future__ import annotations

from django.db import connection
from django.db.models import F, FloatField, Q, QuerySet, Value
from django.db.models.functions import Substr

from enrichment.models import CollectedDocument

SNIPPET_CHARS = 300
# The text search configuration: "simple" (no stemming) because collected sources are Korean
# and English; it must match the expression of the GIN index (migration 0003).
SEARCH_CONFIG = "simple"


def search_vector():
    from django.contrib.postgres.search import SearchVector

    return SearchVector("title", "text", config=SEARCH_CONFIG)


def documents_search(*, query: str, source: str | None = None, limit: int = 20) -> QuerySet[CollectedDocument]:
    """Documents matching ``query`` (PostgreSQL full-text search, ranked; word containment elsewhere)."""
    documents = CollectedDocument.objects.select_related("source").annotate(snippet=Substr("text", 1, SNIPPET_CHARS))
    if source:
        documents = documents.filter(source__name=source)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchRank

        search_query = SearchQuery(query, config=SEARCH_CONFIG, search_type="websearch")
        documents = (
            documents.annotate(vector=search_vector())
            .filter(vector=search_query)
            .annotate(rank=SearchRank(F("vector"), search_query))
            .order_by("-rank", "-fetched_at")
        )
    else:
        # SQLite (make run): every word must appear in the title or the text.
        condition = Q()
        for word in query.split()[:10]:
            condition &= Q(title__icontains=word) | Q(text__icontains=word)
        documents = documents.filter(condition).annotate(rank=Value(None, output_field=FloatField()))
    return documents[:limit]
