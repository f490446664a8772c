"""The admin's front page in Chromium at 1,280 px: the overview of the day with demo data, every
part's link leading to its page, and no horizontal scroll (asserted from the page's scroll width)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Role

PASSWORD = "browser-overview-password-3!"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_admin(transactional_db):
    return get_user_model().objects.create_superuser("overview-admin", "o@example.com", PASSWORD, role=Role.ADMIN)


def _busy_day(staff_admin):
    """Demo data plus a day's worth of the rest: long job names, failing runs, many agents' traces."""
    from django.core.management import call_command

    from reports.models import JobOutcome, JobRun
    from tests.traces.factories import save_traces, trace_row
    from traces.models import SpanStatus

    call_command("seed_demo", verbosity=0)
    now = timezone.now()
    for index in range(12):
        JobRun.objects.create(
            job=f"a-rather-long-job-name-that-wraps-{index}",
            outcome=JobOutcome.FAILED if index % 3 == 0 else JobOutcome.SUCCESS,
            started_at=now - timedelta(minutes=index),
        )
    rows = []
    for number in range(8):
        agent = get_user_model().objects.create_user(
            username=f"support-agent-with-a-long-name-{number}", role=Role.AGENT
        )
        for index in range(20):
            start = now - timedelta(hours=1, seconds=index)
            rows.append(
                trace_row(
                    agent=agent,
                    user_id=f"user-{index}",
                    start=start,
                    end=start + timedelta(milliseconds=300 + 100 * index),
                    cost="0.0125",
                    status=SpanStatus.ERROR if index == 0 else SpanStatus.OK,
                )
            )
    save_traces(rows)


def test_the_overview_fits_1280_px_and_links_to_each_page(page, live_server, staff_admin):
    _busy_day(staff_admin)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "overview-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.shot("overview-1280")
    scroll_width, client_width = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll_width <= client_width == 1280
    for part in ("#ov-experiments", "#ov-fleet", "#ov-jobs", "#ov-labels", "#ov-breakers", "#ov-alerts"):
        assert page.locator(part).is_visible(), part
    assert "Agent fleet, last 24 h" in page.inner_text("#ov-fleet")
    runs = int(re.search(r"(\d+) runs", page.inner_text("#ov-fleet")).group(1))
    assert runs >= 160  # ours, plus the demo's
    # The grouped navigation, library internals last.
    groups = page.locator(".ov-nav h2").all_inner_texts()
    assert [g.lower() for g in groups[:7]] == [
        "experiments & prompts",
        "agents & traces",
        "quality",
        "audit",
        "operations",
        "access",
        "advanced",
    ]
    # Each part's heading leads to its page; "View site" leads back here.
    page.click("#ov-jobs h2 a")
    page.wait_for_url("**/admin/reports/jobrun/")
    page.click("text=View site")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.click("#nav-operations >> text=Monitoring dashboard")
    page.wait_for_url("**/admin/monitoring/operationminute/dashboard/**")
    page.go_back()
    if page.locator("#ov-experiments td a").count():
        page.click("#ov-experiments >> text=Statistics")
        page.wait_for_url("**/stats/")
        page.shot("overview-stats-link")
