"""Scheduled collection of public data: fetch each due source, store new documents once.

Fetches go through the same SSRF guard, size limits and breaker discipline as agents' requests.
A transient failure (timeout, 5xx, 429, open breaker) is retried by re-enqueueing the Celery task
for that source with an exponential countdown, never by sleeping in a worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

import lxml.etree
import lxml.html
from celery.schedules import crontab
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from agentplatform.aio import run_async
from agentplatform.breakers import CircuitOpen, get_breaker
from agentplatform.errors import NotFound
from agentplatform.http import build_async_client, http_timeout
from audit.services import audit_log
from enrichment.extract import extract_article
from enrichment.fetch import FEED_TYPES, HTML_TYPES, JSON_TYPES, FetchedDocument, fetch_document, guarded_transport
from enrichment.models import CollectedDocument, DataSource
from enrichment.providers.base import UNAVAILABLE, UNSUPPORTED_CONTENT, ProviderError
from enrichment.ssrf import UrlGuard

logger = logging.getLogger(__name__)

# One breaker per source (sources are few and admin-defined): one failing site pauses only itself.
BREAKER = "enrichment.collect.{}"
_ACCEPT = {
    DataSource.Kind.RSS: (*FEED_TYPES, "text/plain"),
    DataSource.Kind.HTML: HTML_TYPES,
    DataSource.Kind.JSON: (*JSON_TYPES, "text/plain"),
}


@dataclass(frozen=True)
class Item:
    url: str
    title: str
    text: str

    @property
    def content_hash(self) -> str:
        normalised = " ".join(self.title.split()) + "\n" + " ".join(self.text.split())
        return hashlib.sha256(normalised.encode()).hexdigest()


# --- which sources run --------------------------------------------------------------------------


def source_is_due(source: DataSource, *, now: datetime | None = None) -> bool:
    """True when the source's crontab has come due since its last run (always, if it never ran)."""
    if source.last_run_at is None:
        return True
    minute, hour, day_of_month, month_of_year, day_of_week = source.schedule.split()
    now = now or timezone.now()
    schedule = crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        nowfun=lambda: now,
    )
    return schedule.remaining_estimate(source.last_run_at).total_seconds() <= 0


def collect_sources(*, source_id: int | None = None, attempt: int = 0, actor=None) -> int:
    """Collect one source now, or every active source that is due; returns new documents stored."""
    if source_id is not None:
        source = DataSource.objects.filter(pk=source_id).first()
        if source is None:
            raise NotFound(f"No data source {source_id}.")
        sources = [source]
    else:
        sources = [source for source in DataSource.objects.filter(active=True) if source_is_due(source)]
    return sum(source_collect(source=source, attempt=attempt, actor=actor) for source in sources)


# --- one source ---------------------------------------------------------------------------------


def source_collect(*, source: DataSource, attempt: int = 0, actor=None) -> int:
    """Fetch ``source``, store its new documents; audited. Transient failures are re-enqueued."""
    now = timezone.now()
    try:
        items = run_async(_fetch_items(source))
    except ProviderError as exc:
        _record_failure(source, exc, now=now)
        retry_in = _schedule_retry(source, exc, attempt=attempt)
        audit_log(
            actor=actor,
            action="datasource.collection_failed",
            resource_type="enrichment.datasource",
            resource_id=source.pk,
            severity="warning",
            success=False,
            details={"code": exc.code, "message": exc.message[:300], "attempt": attempt, "retry_in_seconds": retry_in},
        )
        return 0
    created = documents_store(source=source, items=items, fetched_at=now)
    DataSource.objects.filter(pk=source.pk).update(
        last_run_at=now, last_success_at=now, last_error="", consecutive_failures=0
    )
    audit_log(
        actor=actor,
        action="datasource.collected",
        resource_type="enrichment.datasource",
        resource_id=source.pk,
        details={"items": len(items), "new_documents": created, "attempt": attempt},
    )
    return created


async def _fetch_items(source: DataSource) -> list[Item]:
    guard = UrlGuard.from_settings()
    timeout = settings.ENRICHMENT_COLLECT_TIMEOUT

    async def fetch() -> FetchedDocument | ProviderError:
        async with build_async_client(
            timeout=http_timeout(connect=min(timeout, 3.0), read=timeout), transport=guarded_transport(guard=guard)
        ) as client:
            try:
                return await fetch_document(
                    client,
                    source.url,
                    guard=guard,
                    accept=_ACCEPT[source.kind],
                    max_bytes=settings.ENRICHMENT_PAGE_MAX_BYTES,
                    max_redirects=settings.ENRICHMENT_MAX_REDIRECTS,
                )
            except ProviderError as exc:
                if exc.transient:
                    raise  # counted by the breaker; a Retry-After holds it open
                return exc  # a permanent error (404, bad content) is the source's, not an outage

    try:
        document = await get_breaker(BREAKER.format(source.pk)).call_async(fetch)
    except CircuitOpen as exc:
        raise ProviderError(
            UNAVAILABLE, "Collection is paused: its circuit is open.", retry_after=exc.retry_after
        ) from None
    if isinstance(document, ProviderError):
        raise document
    return parse_items(source.kind, document)


def parse_items(kind: str, document: FetchedDocument) -> list[Item]:
    """The documents in a fetched feed, page or JSON listing (bounded, empty texts dropped)."""
    if kind == DataSource.Kind.RSS:
        items = _feed_items(document)
    elif kind == DataSource.Kind.HTML:
        extracted = extract_article(document.text, url=document.url)
        items = [Item(url=document.url, title=extracted.title, text=extracted.text)]
    else:
        items = _json_items(document)
    return [item for item in items if item.text.strip()][: settings.ENRICHMENT_COLLECT_MAX_ITEMS]


# No DTD, no entities, no network: a hostile feed cannot make the parser fetch or expand anything.
_XML_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
_ATOM = "{http://www.w3.org/2005/Atom}"


def _feed_items(document: FetchedDocument) -> list[Item]:
    parser = lxml.etree.XMLParser(**_XML_PARSER_OPTIONS)
    try:
        root = lxml.etree.fromstring(document.body, parser=parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise ProviderError(UNSUPPORTED_CONTENT, f"The feed is not well-formed XML: {exc}") from None
    items: list[Item] = []
    for node in root.iter("item"):  # RSS 2.0
        items.append(
            Item(
                url=(node.findtext("link") or node.findtext("guid") or "").strip(),
                title=_plain(node.findtext("title") or ""),
                text=_plain(node.findtext("description") or ""),
            )
        )
    for node in root.iter(f"{_ATOM}entry"):  # Atom
        link = node.find(f"{_ATOM}link")
        items.append(
            Item(
                url=(link.get("href", "") if link is not None else "").strip(),
                title=_plain(node.findtext(f"{_ATOM}title") or ""),
                text=_plain(node.findtext(f"{_ATOM}content") or node.findtext(f"{_ATOM}summary") or ""),
            )
        )
    return items


def _json_items(document: FetchedDocument) -> list[Item]:
    try:
        data = json.loads(document.text)
    except ValueError:
        raise ProviderError(UNSUPPORTED_CONTENT, "The source did not return JSON.") from None
    if isinstance(data, dict):
        data = next(
            (data[key] for key in ("items", "data", "results", "documents") if isinstance(data.get(key), list)), []
        )
    if not isinstance(data, list):
        return []
    items = []
    for entry in data:
        if not isinstance(entry, dict):
            continue
        items.append(
            Item(
                url=str(entry.get("url") or entry.get("link") or document.url),
                title=_plain(str(entry.get("title") or entry.get("name") or "")),
                text=_plain(str(entry.get("text") or entry.get("content") or entry.get("description") or "")),
            )
        )
    return items


def _plain(value: str) -> str:
    """Text of an HTML fragment (feeds carry HTML in descriptions), whitespace collapsed."""
    value = value.strip()
    if "<" in value:
        with contextlib.suppress(lxml.etree.ParserError, ValueError):
            value = lxml.html.fromstring(value).text_content()
    return " ".join(value.split())


def documents_store(*, source: DataSource, items: list[Item], fetched_at: datetime) -> int:
    """Insert the items not stored yet (by content hash); returns how many were new."""
    by_hash = {item.content_hash: item for item in items}
    existing = set(
        CollectedDocument.objects.filter(content_hash__in=list(by_hash)).values_list("content_hash", flat=True)
    )
    new = [
        CollectedDocument(
            source=source,
            url=item.url[:2000] or source.url,
            title=item.title[:500],
            text=item.text,
            content_hash=content_hash,
            fetched_at=fetched_at,
        )
        for content_hash, item in by_hash.items()
        if content_hash not in existing
    ]
    # ignore_conflicts: another worker may store the same document between the read and the insert.
    CollectedDocument.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
    return len(new)


# --- failures and retries -----------------------------------------------------------------------


def _record_failure(source: DataSource, error: ProviderError, *, now: datetime) -> None:
    DataSource.objects.filter(pk=source.pk).update(
        last_run_at=now,
        last_error=f"{error.code}: {error.message}"[:500],
        consecutive_failures=F("consecutive_failures") + 1,
    )


def retry_countdown(attempt: int, *, retry_after: float | None = None) -> int:
    """Seconds before retry ``attempt`` (1-based): exponential, at least what the upstream asked."""
    backoff = settings.ENRICHMENT_COLLECT_BACKOFF_SECONDS * 2 ** (attempt - 1)
    return int(max(backoff, retry_after or 0))


def _schedule_retry(source: DataSource, error: ProviderError, *, attempt: int) -> int | None:
    next_attempt = attempt + 1
    if not error.transient or next_attempt >= settings.ENRICHMENT_COLLECT_MAX_ATTEMPTS:
        return None
    from enrichment.tasks import collect_sources_task

    countdown = retry_countdown(next_attempt, retry_after=error.retry_after)
    collect_sources_task.apply_async(kwargs={"source_id": source.pk, "attempt": next_attempt}, countdown=countdown)
    logger.info("collection of %s failed (%s); retry %d in %d s", source.name, error.code, next_attempt, countdown)
    return countdown
