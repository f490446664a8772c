import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role

PASSWORD = "browser-test-password-9!"


@pytest.fixture
def staff_admin(transactional_db):
    return get_user_model().objects.create_superuser("browser-admin", "b@example.com", PASSWORD, role=Role.ADMIN)


def test_admin_login_shows_every_app(page, live_server, staff_admin):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "browser-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.shot("admin-index")
    body = page.inner_text("body").lower()
    for section in ("Accounts", "Audit", "Experiments", "Monitoring", "Enrichment", "Reports"):
        assert section.lower() in body


def test_api_docs_render_without_a_cdn(page, live_server):
    requests = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)
    page.shot("api-docs")
    assert "Agent Ops Platform API" in page.inner_text(".swagger-ui .info")
    assert all(url.startswith((live_server.url, "data:")) for url in requests), requests
