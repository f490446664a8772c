import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role

PASSWORD = "browser-test-password-9!"


@pytest.fixture
def staff_admin(transactional_db):
    return get_user_model().objects.create_superuser("browser-admin", "b@example.com", PASSWORD, role=Role.ADMIN)


def test_admin_login_shows_the_overview_and_every_group(page, live_server, staff_admin):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "browser-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.shot("admin-index")
    body = page.inner_text("body").lower()
    for section in ("Experiments & prompts", "Agents & traces", "Quality", "Audit", "Operations", "Access", "Advanced"):
        assert section.lower() in body


def test_api_docs_render_without_a_cdn(page, live_server):
    requests = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)
    page.shot("api-docs")
    assert "Agent Ops Platform API" in page.inner_text(".swagger-ui .info")
    assert all(url.startswith((live_server.url, "data:")) for url in requests), requests


def test_every_admin_page_fits_1280_px_with_the_demo_data(page, live_server, staff_admin):
    """No list, add or change page scrolls sideways at 1,280 px, nor the results box of a list."""
    from django.contrib import admin as django_admin
    from django.core.management import call_command

    call_command("seed_demo", verbosity=0)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "browser-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    too_wide = {}
    pages = [("overview", "/admin/")]
    for model, model_admin in django_admin.site._registry.items():
        meta = model._meta
        pages.append((meta.label, f"/admin/{meta.app_label}/{meta.model_name}/"))
        if model_admin.has_add_permission(type("Request", (), {"user": staff_admin})()):
            pages.append((f"{meta.label} add", f"/admin/{meta.app_label}/{meta.model_name}/add/"))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages.append((f"{meta.label} change", f"/admin/{meta.app_label}/{meta.model_name}/{first.pk}/change/"))
    for label, path in pages:
        page.goto(f"{live_server.url}{path}")
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
            " ...(document.querySelector('.results') ? [document.querySelector('.results').scrollWidth,"
            " document.querySelector('.results').clientWidth] : [0, 0])]"
        )
        if widths[0] > widths[1] or widths[2] > widths[3]:
            too_wide[label] = widths
            page.shot(f"too-wide-{label}")
    assert too_wide == {}, f"[page scroll width, page width, results scroll width, results width]: {too_wide}"
