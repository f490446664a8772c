"""The stats page counts results the moment the API acknowledged them: an agent posts results
after the rollup's watermark (some from users the rollup already holds, some from new users), and
the page — at 1,280 px, without horizontal scroll — shows every one of them, equal to ``source=raw``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role

PASSWORD = "browser-fresh-stats-password-3!"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(transactional_db):
    return get_user_model().objects.create_superuser("fresh-staff", "f@example.com", PASSWORD, role=Role.ADMIN)


@pytest.fixture
def agent_http(live_server, transactional_db):
    from accounts.services import api_key_create

    agent = get_user_model().objects.create_user(username="fresh-agent", role=Role.AGENT)
    agent.set_unusable_password()
    agent.save()
    _, raw_key = api_key_create(user=agent, name="browser-fresh")
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Api-Key {raw_key}"}, timeout=30) as client:
        yield client


def test_results_posted_a_moment_ago_are_counted_on_the_stats_page(page, live_server, staff, agent_http):
    from experiments.models import Exposure, Variant
    from experiments.snapshot import compile_experiment
    from experiments.stats.rollup import experiment_stats_catch_up
    from experiments.stats.selectors import experiment_stats
    from tests.experiments.stats import datasets
    from tests.experiments.stats.conftest import add_results, load_dataset

    empty = datasets.DataSet("fresh", "response_time_ms", [], {"control": 1, "b": 1}, "control", [])
    experiment = load_dataset(empty, key="fresh-stats")
    # The whole namespace, as a start would allocate it (load_dataset sets the status only).
    experiment.namespace_start, experiment.namespace_end = 0, 1
    experiment.save(update_fields=["namespace_start", "namespace_end"])
    variants = {v.key: v for v in Variant.objects.filter(experiment=experiment)}
    compiled = compile_experiment(experiment)
    candidates = (f"fresh-user-{n:03d}" for n in range(1000))
    users = [u for u in candidates if compiled.assign(u) is not None][:40]
    assigned = {u: compiled.assign(u).key for u in users}
    Exposure.objects.bulk_create(
        Exposure(experiment=experiment, variant=variants[assigned[u]], user_id=u, first_seen_at=datetime.now(UTC))
        for u in users
    )
    now = datetime.now(UTC)
    before = [
        {"variant": assigned[u], "user_id": u, "day": 0, "success": True, "response_time_ms": 800.0 + n,
         "tokens": 300, "quality_score": 0.7, "user_feedback": 1}
        for n, u in enumerate(users[:20])
    ]  # fmt: skip
    add_results(experiment, variants, before, recorded_at=now - timedelta(hours=1))
    experiment_stats_catch_up(experiment=experiment, now=now)  # the watermark: 30 s ago

    # After the watermark, through the API: users 10-19 again (both sides), users 20-39 for the first time.
    posted = 0
    for n, user in enumerate(users[10:]):
        rows = [
            {"event_id": f"{user}-{turn}", "user_id": user, "variant": assigned[user], "success": turn == 0,
             "response_time_ms": 600.0 + 7 * n + turn}
            for turn in range(2)
        ]  # fmt: skip
        answer = agent_http.post("/api/v1/experiments/fresh-stats/results", json={"results": rows})
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 2, answer.text
        posted += 2
    raw = experiment_stats(experiment=experiment, source="raw")
    assert sum(v["results"] for v in raw["variants"]) == len(before) + posted

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "fresh-staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.goto(f"{live_server.url}/admin/experiments/experiment/{experiment.pk}/stats/")
    page.wait_for_selector("#variants")
    page.shot("stats-fresh-after-results")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )
    rows = {
        cells[0].split(" ")[0]: cells
        for cells in (row.split("\t") for row in page.locator("#variants tbody tr").all_inner_texts())
    }
    for variant in raw["variants"]:
        cells = rows[variant["key"]]
        assert int(cells[2]) == variant["results"]  # every acknowledged result, straight away
        summary = variant["metrics"]["response_time_ms"]
        assert cells[3].split(" / ")[0] == str(summary["n"])
        assert float(cells[3].split(" / ")[1]) == pytest.approx(summary["mean"], abs=5e-5)
    # A just-started experiment: collecting data in a neutral colour, not a red "INVALID".
    banner = page.locator("#decision")
    assert "neutral" in banner.get_attribute("class")
    assert banner.locator("strong").inner_text().startswith("Collecting data — ")
    assert "INVALID" not in page.content()
