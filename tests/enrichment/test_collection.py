"""Scheduled collection: fetch through the guard, dedupe by content hash, retry transient errors."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest

from enrichment.collection import collect_sources, retry_countdown, source_is_due
from enrichment.models import CollectedDocument, DataSource
from tests.enrichment.conftest import Reply

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Notices</title>
  <item><title>평생교육 바우처 신청 안내</title><link>https://nile.example/n/1</link>
    <description><![CDATA[<p>2027년 평생교육 <b>바우처</b> 신청을 받습니다.</p>]]></description></item>
  <item><title>Childcare subsidy update</title><link>https://nile.example/n/2</link>
    <description>The childcare subsidy rises in March.</description></item>
</channel></rss>"""


@pytest.fixture
def feed(upstream, allow):
    allow(upstream)
    upstream.route("/feed.xml", Reply(body=RSS, content_type="application/rss+xml; charset=utf-8"))
    return upstream


@pytest.fixture
def source(db, feed):
    return DataSource.objects.create(name="NILE test", url=feed.url + "/feed.xml", kind="rss", active=True)


def test_example_sources_ship_inactive(db):
    examples = DataSource.objects.filter(name__regex=r"^(NILE|MOHW|KICCE) ")
    assert examples.count() == 3
    assert not examples.filter(active=True).exists()


def test_feed_items_become_documents(source):
    assert collect_sources() == 2
    documents = {d.title: d for d in CollectedDocument.objects.all()}
    assert documents["평생교육 바우처 신청 안내"].text == "2027년 평생교육 바우처 신청을 받습니다."
    assert documents["Childcare subsidy update"].url == "https://nile.example/n/2"
    source.refresh_from_db()
    assert source.last_success_at is not None and source.consecutive_failures == 0


def test_collecting_again_stores_nothing_twice(source):
    collect_sources(source_id=source.pk)
    assert collect_sources(source_id=source.pk) == 0
    assert CollectedDocument.objects.count() == 2


def test_runs_are_audited_with_counts(source):
    with mock.patch("enrichment.collection.audit_log") as audit_log:
        collect_sources(source_id=source.pk)
    kwargs = audit_log.call_args.kwargs
    assert (kwargs["action"], kwargs["resource_id"]) == ("datasource.collected", source.pk)
    assert kwargs["details"] == {"items": 2, "new_documents": 2, "attempt": 0}


def test_html_and_json_sources_are_parsed(db, upstream, allow):
    allow(upstream)
    article = "<html><head><title>Press release</title></head><body><article>" + "<p>Welfare budget grows.</p>" * 30
    upstream.route("/page", Reply(body=article + "</article></body></html>"))
    upstream.route("/api", Reply(body={"items": [{"title": "J", "url": "https://j.example/1", "text": "json text"}]}))
    DataSource.objects.create(name="html", url=upstream.url + "/page", kind="html", active=True)
    DataSource.objects.create(name="json", url=upstream.url + "/api", kind="json", active=True)
    assert collect_sources() == 2
    assert set(CollectedDocument.objects.values_list("title", flat=True)) == {"Press release", "J"}


def test_transient_failure_is_re_enqueued_with_backoff(db, upstream, allow, settings):
    allow(upstream)
    upstream.route("/feed.xml", Reply(503, "down", headers={"Retry-After": "5"}))
    source = DataSource.objects.create(name="flaky", url=upstream.url + "/feed.xml", kind="rss", active=True)
    with mock.patch("enrichment.tasks.collect_sources_task.apply_async") as apply_async:
        assert collect_sources(source_id=source.pk) == 0
    apply_async.assert_called_once_with(
        kwargs={"source_id": source.pk, "attempt": 1}, countdown=settings.ENRICHMENT_COLLECT_BACKOFF_SECONDS
    )
    source.refresh_from_db()
    assert source.consecutive_failures == 1
    assert source.last_error.startswith("upstream_unavailable")


def test_retry_succeeds_once_the_source_recovers(db, upstream, allow, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    allow(upstream)
    answers = iter([Reply(502, "bad gateway"), Reply(body=RSS, content_type="application/rss+xml")])
    upstream.route("/feed.xml", lambda _request: next(answers))
    source = DataSource.objects.create(name="recovering", url=upstream.url + "/feed.xml", kind="rss", active=True)
    from enrichment.tasks import collect_sources_task

    with mock.patch.object(
        collect_sources_task, "apply_async", side_effect=lambda kwargs, countdown: collect_sources_task(**kwargs)
    ):
        collect_sources(source_id=source.pk)
    assert upstream.hits("/feed.xml") == 2
    assert CollectedDocument.objects.filter(source=source).count() == 2


def test_permanent_failure_is_not_retried(db, upstream, allow):
    allow(upstream)
    source = DataSource.objects.create(name="gone", url=upstream.url + "/missing", kind="rss", active=True)
    with mock.patch("enrichment.tasks.collect_sources_task.apply_async") as apply_async:
        collect_sources(source_id=source.pk)
    apply_async.assert_not_called()
    source.refresh_from_db()
    assert source.last_error.startswith("not_found")


def test_retries_stop_after_the_last_attempt(db, upstream, allow, settings):
    allow(upstream)
    upstream.route("/feed.xml", Reply(503, "down"))
    source = DataSource.objects.create(name="dead", url=upstream.url + "/feed.xml", kind="rss", active=True)
    with mock.patch("enrichment.tasks.collect_sources_task.apply_async") as apply_async:
        collect_sources(source_id=source.pk, attempt=settings.ENRICHMENT_COLLECT_MAX_ATTEMPTS - 1)
    apply_async.assert_not_called()


def test_backoff_doubles_and_honours_retry_after(settings):
    settings.ENRICHMENT_COLLECT_BACKOFF_SECONDS = 60
    assert [retry_countdown(n) for n in (1, 2, 3)] == [60, 120, 240]
    assert retry_countdown(1, retry_after=600) == 600


def test_collection_fetches_through_the_ssrf_guard(db, upstream):
    source = DataSource.objects.create(name="private", url=upstream.url + "/feed.xml", kind="rss", active=True)
    collect_sources(source_id=source.pk)
    source.refresh_from_db()
    assert source.last_error.startswith("forbidden_target")
    assert upstream.received == []


def test_only_active_due_sources_run_on_schedule(db):
    never_ran = DataSource(name="a", url="https://a.example/", schedule="0 6 * * *", active=True)
    assert source_is_due(never_ran)
    ran_today = DataSource(
        name="b",
        url="https://b.example/",
        schedule="0 6 * * *",
        last_run_at=datetime(2026, 11, 27, 6, 0, 5, tzinfo=UTC),
    )
    assert not source_is_due(ran_today, now=datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    assert source_is_due(ran_today, now=datetime(2026, 11, 28, 6, 1, tzinfo=UTC))


def test_inactive_sources_are_skipped_by_scheduled_runs(db, feed):
    DataSource.objects.create(name="off", url=feed.url + "/feed.xml", kind="rss", active=False)
    assert collect_sources() == 0
    assert feed.received == []
