"""The traces pages that are not a model's list or change page (which the smoke test covers): the
waterfall of a demo trace, the unpriced models, the reprice confirmation and the dashboard's cost
panels, each fitting 1,280 px with no Content-Security-Policy violation (the page fixture fails on one)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role

PASSWORD = "browser-test-password-9!"
WIDTHS = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"


@pytest.fixture
def traces_admin(transactional_db):
    return get_user_model().objects.create_superuser("traces-admin", "t@example.com", PASSWORD, role=Role.ADMIN)


def test_trace_pages_fit_1280_px_and_draw_the_waterfall(page, live_server, traces_admin):
    from importlib import import_module

    from django.apps import apps
    from django.core.management import call_command

    from traces.models import Trace

    # A transactional test starts from flushed tables: the seed price table (a data migration) is
    # put back so the demo traces are priced as under make run.
    import_module("traces.migrations.0002_seed_model_prices").seed(apps, None)
    call_command("seed_demo", verbosity=0)
    trace = Trace.objects.filter(status="error").first()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "traces-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    too_wide = {}
    for label, path in (
        ("waterfall", f"/admin/traces/trace/{trace.pk}/change/"),
        ("unpriced", "/admin/traces/modelprice/unpriced/"),
        ("reprice", "/admin/traces/modelprice/reprice/?since=2026-01-01"),
        ("dashboard", "/admin/monitoring/operationminute/dashboard/?window=7d"),
    ):
        page.goto(f"{live_server.url}{path}")
        page.shot(label)
        widths = page.evaluate(WIDTHS)
        if widths[0] > widths[1]:
            too_wide[label] = widths
        if label == "waterfall":
            assert page.locator("tr.traces-span").count() == trace.span_count
            assert page.locator("rect.traces-bar-error").count() >= 1
            page.locator("details.traces-detail:has(pre.traces-content) summary").first.click()
            assert page.locator("pre.traces-content").first.is_visible()
        if label == "unpriced":
            assert page.locator("#unpriced-models td", has_text="llama-3.1-8b-instruct").count() == 1
        if label == "dashboard":
            assert page.locator("#top-traces a").count() >= 1
    assert too_wide == {}, too_wide
