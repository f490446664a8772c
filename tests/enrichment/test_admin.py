"""Admin: "collect now" and the streaming CSV export with formula cells neutralised."""

from __future__ import annotations

import csv
import io
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from agentplatform.exports import csv_safe
from enrichment.models import CollectedDocument, DataSource


@pytest.fixture
def admin_client(client, db):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "admin-password-1", role="admin")
    client.force_login(admin)
    return client


def test_collect_now_queues_the_selected_sources(admin_client):
    source = DataSource.objects.create(name="s", url="https://s.example/feed", kind="rss")
    with mock.patch("enrichment.tasks.collect_sources_task.delay") as delay:
        response = admin_client.post(
            "/admin/enrichment/datasource/", {"action": "collect_now", "_selected_action": [source.pk]}
        )
    assert response.status_code == 302
    delay.assert_called_once_with(source_id=source.pk)


def test_document_export_streams_csv_with_formulas_neutralised(admin_client):
    source = DataSource.objects.create(name="s", url="https://s.example/feed")
    document = CollectedDocument.objects.create(
        source=source,
        url="https://s.example/1",
        title='=HYPERLINK("http://evil")',
        text="+1 plain",
        content_hash="a" * 64,
        fetched_at=timezone.now(),
    )
    response = admin_client.post(
        "/admin/enrichment/collecteddocument/", {"action": "export_csv", "_selected_action": [document.pk]}
    )
    assert response.status_code == 200
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))
    assert rows[0] == ["id", "source", "url", "title", "text", "content_hash", "fetched_at"]
    assert rows[1][3] == '\'=HYPERLINK("http://evil")'
    assert rows[1][4] == "'+1 plain"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx"])
def test_csv_safe_prefixes_formula_starts(value):
    assert csv_safe(value) == "'" + value


def test_data_source_urls_must_pass_the_guard(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        DataSource(name="x", url="http://169.254.169.254/", schedule="0 6 * * *").full_clean()
    with pytest.raises(ValidationError):
        DataSource(name="y", url="https://ok.example/", schedule="every day").full_clean()
