"""The stats page of an experiment judged on trace metrics, in a real browser: 1280 px wide with
every trace metric as a column, no horizontal scroll, no console or CSP error."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role

PASSWORD = "browser-trace-metrics-password-5!"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(transactional_db):
    return get_user_model().objects.create_superuser("tracer", "t@example.com", PASSWORD, role=Role.ADMIN)


def test_the_stats_page_of_trace_metrics_fits_1280_px(page, live_server, staff):
    from tests.experiments.stats.trace_datasets import TRACE_METRICS, generate
    from traces import partitions

    partitions.forget()
    data = generate(key="trace-costs", users_per_variant=30)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "tracer")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")

    for source in ("rollup", "raw"):
        page.goto(f"{live_server.url}/admin/experiments/experiment/{data.experiment.pk}/stats/?source={source}")
        page.wait_for_selector("#variants")
        page.shot(f"trace-metrics-stats-{source}")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        headings = page.locator("#variants th").all_inner_texts()
        assert any(h.lower().startswith("cost_per_user (usd)") for h in headings)  # admin CSS may upper-case
        compared = {row.split("\t")[1] for row in page.locator("#comparisons tbody tr").all_inner_texts()}
        assert {metric.split(" ")[0] for metric in compared} == set(TRACE_METRICS)
        assert page.locator(".cumulative-chart polyline").count() == 2
