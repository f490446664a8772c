"""Demo data for ``make run``: a few collected documents so document search answers (idempotent)."""

from __future__ import annotations

from django.utils import timezone

from enrichment.collection import Item, documents_store
from enrichment.models import DataSource

DEMO_SOURCE = "Demo notices (local)"
DEMO_ITEMS = [
    Item(
        url="https://demo.invalid/notices/1",
        title="Lifelong learning vouchers open for 2027",
        text="Adults aged 19 and over may apply for lifelong learning vouchers from 2 January to 31 March 2027.",
    ),
    Item(
        url="https://demo.invalid/notices/2",
        title="평생교육 바우처 신청 안내",
        text="2027년 평생교육 바우처 신청을 1월 2일부터 3월 31일까지 받습니다.",
    ),
    Item(
        url="https://demo.invalid/notices/3",
        title="Childcare subsidy rises in March",
        text="The monthly childcare subsidy for families with infants rises by eight percent from March.",
    ),
]


def seed(*, stdout) -> None:
    source, _ = DataSource.objects.get_or_create(
        name=DEMO_SOURCE,
        defaults={"url": "https://demo.invalid/feed.xml", "kind": DataSource.Kind.RSS, "active": False},
    )
    created = documents_store(source=source, items=DEMO_ITEMS, fetched_at=timezone.now())
    stdout.write(f"enrichment: {created} demo document(s) added (search them at /api/v1/documents/search?q=voucher)")
