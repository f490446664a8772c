"""The demo seed for make run is idempotent and makes document search answer."""

from __future__ import annotations

import io

import pytest

from enrichment import demo
from enrichment.models import CollectedDocument
from enrichment.selectors import documents_search

pytestmark = pytest.mark.django_db


def test_demo_seed_is_idempotent_and_searchable():
    demo.seed(stdout=io.StringIO())
    demo.seed(stdout=io.StringIO())
    assert CollectedDocument.objects.filter(source__name=demo.DEMO_SOURCE).count() == len(demo.DEMO_ITEMS)
    assert [d.title for d in documents_search(query="vouchers")] == ["Lifelong learning vouchers open for 2027"]
