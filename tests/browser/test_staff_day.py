"""A staff member's day in a real browser: design, start and read an experiment, then audit,
monitoring and the daily report, one page after another as an operator would click through them.

Headless Chromium (Debian's package) against the live server; every page is screenshotted into
tests/browser/artifacts/ and any console error fails the test (the ``page`` fixture).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role

PASSWORD = "browser-staff-password-7!"
USERS = [f"creator-{n:02d}" for n in range(12)]  # 24 results

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(transactional_db):
    return get_user_model().objects.create_superuser("staff-day", "s@example.com", PASSWORD, role=Role.ADMIN)


@pytest.fixture
def agent_http(live_server, transactional_db):
    from accounts.services import api_key_create

    agent = get_user_model().objects.create_user(username="results-agent", role=Role.AGENT)
    agent.set_unusable_password()
    agent.save()
    _, raw_key = api_key_create(user=agent, name="browser-e2e")
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Api-Key {raw_key}"}, timeout=30) as client:
        yield client


def results_post(http: httpx.Client) -> int:
    """What an agent does for each creator: resolve its prompt, then report how the turn went."""
    from experiments.services.exposures import exposures_flush, exposures_forget_seen

    exposures_forget_seen()  # this process may remember (experiment id, user) pairs of earlier tests
    posted = 0
    for index, user_id in enumerate(USERS):
        resolved = http.post("/api/v1/prompts/resolve", json={"user_id": user_id, "prompt_type": "welcome"})
        assert resolved.status_code == 200, resolved.text
        variant = resolved.json()["variant"]
        assert variant in {"control", "friendly"}, resolved.json()
        rows = [
            {
                "event_id": f"{user_id}-{turn}",
                "user_id": user_id,
                "variant": variant,
                "success": (index + turn) % 3 != 0,
                "response_time_ms": 700.0 + 10 * index + turn,
            }
            for turn in range(2)
        ]
        stored = http.post("/api/v1/experiments/welcome-tone/results", json={"results": rows})
        assert stored.json()["accepted"] == 2, stored.text
        posted += 2
    exposures_flush()
    now = datetime.now(UTC).isoformat()
    timings = [
        {"operation": "agent.welcome.llm", "duration_ms": 600.0 + n, "success": n != 0, "occurred_at": now}
        for n in range(3)
    ]
    assert http.post("/api/v1/monitoring/operations", json={"operations": timings}).json()["accepted"] == 3
    run = {
        "run_id": "welcome-run-1",
        "agent": "results-agent",
        "workflow": "welcome",
        "steps": 3,
        "retry_count": 1,
        "no_progress_count": 0,
        "tokens": 900,
        "outcome": "success",
        "started_at": now,
        "finished_at": now,
    }
    assert http.post("/api/v1/monitoring/agent-runs", json={"runs": [run]}).json()["accepted"] == 1
    return posted


def downloaded_csv(download) -> list[dict]:
    return list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))


def test_a_staff_day_in_the_admin(page, live_server, staff, agent_http, settings):
    settings.EXPERIMENT_STATS_ROLLUP_LAG_SECONDS = 0  # read the results just posted
    # No worker in this test: with the embedded broker, "run now" runs the job in the web process
    # (agentplatform.scheduling.runner.job_enqueue); the agent flow covers the worker path.
    settings.CELERY_BROKER_URL = "memory://"
    admin = f"{live_server.url}/admin"

    # Log in.
    page.goto(f"{admin}/login/")
    page.shot("login")
    page.fill("#id_username", "staff-day")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{admin}/")

    # Design an experiment with two variants and a guardrail; a bad percentage is refused first.
    page.goto(f"{admin}/experiments/experiment/add/")
    page.fill("#id_key", "welcome-tone")
    page.fill("#id_name", "Welcome message tone")
    page.fill("#id_target_prompt_type", "welcome")
    page.select_option("#id_primary_metric", "success_rate")
    page.check("input[name=guardrail_metrics][value=response_time_ms]")
    page.fill("#id_user_percentage", "150")
    for index, (key, content, control) in enumerate(
        (("control", "Welcome. Here is what to do next.", True), ("friendly", "Hi! So glad you're here.", False))
    ):
        page.fill(f"#id_variants-{index}-key", key)
        page.fill(f"#id_variants-{index}-content", content)
        page.fill(f"#id_variants-{index}-weight", "1")
        if control:
            page.check(f"#id_variants-{index}-is_control")
    page.shot("experiment-add")
    page.click("input[name=_continue]")
    page.wait_for_selector(".errornote")
    assert "at most 100" in page.inner_text(".field-user_percentage")
    page.shot("experiment-bad-percentage")
    page.fill("#id_user_percentage", "100")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    page.shot("experiment-saved")

    # Start it through the confirmation page.
    page.click("text=Start")
    page.wait_for_selector("input[type=submit][value^='Yes']")
    page.shot("experiment-start-confirm")
    page.click("input[type=submit][value^='Yes']")
    page.wait_for_selector(".messagelist .success")
    assert "running" in page.inner_text("#content").lower()
    page.shot("experiment-running")
    change_url = page.url

    # Agents report results through the API.
    posted = results_post(agent_http)

    # Statistics: the forest plot and the daily chart are server-rendered SVG.
    page.click("a.stats-link")
    page.wait_for_load_state()
    forest = page.locator("svg", has_text="lift vs control")
    daily = page.locator("svg", has_text="per-user mean of success_rate")
    assert forest.count() == 1 and daily.count() == 1, page.inner_text("#content")
    assert "success_rate · friendly" in forest.text_content()
    assert "response_time_ms · friendly" in forest.text_content()  # the guardrail
    variants = page.locator("#content table", has_text="exposures").first.inner_text()
    assert "control" in variants and "friendly" in variants
    page.shot("experiment-stats")

    # The results CSV holds exactly the rows posted.
    page.goto(change_url)
    with page.expect_download() as download_info:
        page.click("text=Results CSV")
    rows = downloaded_csv(download_info.value)
    assert len(rows) == posted
    assert {row["user_id"] for row in rows} == set(USERS)
    assert {row["event_id"] for row in rows} == {f"{u}-{t}" for u in USERS for t in range(2)}

    # The audit log, filtered to experiment actions, then exported as CSV.
    page.goto(f"{admin}/audit/auditevent/")
    page.shot("audit-log")
    page.click("#changelist-filter a[href*='family=experiment']")
    page.wait_for_url("**family=experiment**")
    listed = page.inner_text("#result_list")
    for action in ("experiment.created", "experiment.started", "experiment.exported"):
        assert action in listed
    page.shot("audit-log-experiment")
    with page.expect_download() as download_info:
        page.click("text=Export this filtered list (CSV)")
    exported = downloaded_csv(download_info.value)
    actions = {row["action"] for row in exported}
    assert {"experiment.created", "experiment.started", "experiment.exported"} <= actions
    assert all(action.startswith("experiment.") for action in actions)

    # The monitoring dashboard.
    page.goto(f"{admin}/monitoring/operationminute/dashboard/")
    operations = page.locator("#content table", has_text="p95 ms").first.inner_text()
    assert "agent.welcome.llm" in operations
    assert "welcome" in page.locator("#content table", has_text="workflow").first.inner_text()
    page.shot("monitoring-dashboard")

    # Run the daily report for today now, then open it.
    today = datetime.now(UTC).date().isoformat()
    page.goto(f"{admin}/reports/jobrun/run/")
    page.select_option("#id_job", "daily_report")
    page.fill("#id_date", today)
    page.shot("run-job")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist")
    page.shot("job-runs")
    page.goto(f"{admin}/reports/report/")
    page.click(f"#result_list tr:has-text('{today}') th a")
    page.wait_for_load_state()
    report = page.inner_text("#content")
    assert "welcome-tone" in report
    assert '"results": 24' in report  # 12 creators, 2 turns each
    page.shot("daily-report")
