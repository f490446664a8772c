"""GET /api/v1/documents/search: full-text search over collected documents."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from enrichment.models import CollectedDocument, DataSource
from enrichment.selectors import documents_search
from tests.enrichment.conftest import user_with

URL = "/api/v1/documents/search"


@pytest.fixture
def documents(db):
    nile = DataSource.objects.create(name="nile", url="https://nile.example/")
    mohw = DataSource.objects.create(name="mohw", url="https://mohw.example/")
    now = timezone.now()
    rows = [
        (nile, "Lifelong learning vouchers", "Adults may apply for lifelong learning vouchers until March."),
        (nile, "평생교육 바우처", "평생교육 바우처 신청 안내"),
        (mohw, "Childcare subsidy", "The childcare subsidy rises for families with infants."),
    ]
    for i, (source, title, text) in enumerate(rows):
        CollectedDocument.objects.create(
            source=source,
            url=f"https://d.example/{i}",
            title=title,
            text=text,
            content_hash=f"{i:064d}",
            fetched_at=now,
        )


def test_search_finds_a_collected_document(agent_client, documents):
    response = agent_client.get(URL, {"q": "childcare subsidy"})
    assert response.status_code == 200
    body = response.json()
    assert [r["title"] for r in body["results"]] == ["Childcare subsidy"]
    assert body["results"][0]["source"] == "mohw"
    assert body["count"] == 1


def test_search_finds_korean_words(agent_client, documents):
    body = agent_client.get(URL, {"q": "바우처"}).json()
    assert [r["title"] for r in body["results"]] == ["평생교육 바우처"]


def test_search_filters_by_source(agent_client, documents):
    assert agent_client.get(URL, {"q": "vouchers", "source": "mohw"}).json()["results"] == []
    assert len(agent_client.get(URL, {"q": "vouchers", "source": "nile"}).json()["results"]) == 1


def test_search_requires_a_query(agent_client, documents):
    assert agent_client.get(URL).status_code == 400


def test_people_with_read_access_may_search(api_client, documents):
    api_client.force_authenticate(user_with(username="ana", role="analyst"))
    assert api_client.get(URL, {"q": "childcare"}).status_code == 200
    api_client.force_authenticate(user_with(username="nobody", role="analyst", role_permissions=False))
    assert api_client.get(URL, {"q": "childcare"}).status_code == 403


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the GIN index exists on PostgreSQL only")
def test_postgresql_search_uses_the_gin_index(documents):
    queryset = documents_search(query="childcare")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "enr_doc_fts_simple" in plan
