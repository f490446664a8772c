"""Headless Chromium (Debian's package) driven by Playwright against a live server.

Skipped when Chromium is absent, except under CI=true where its absence fails the run: CI installs
the package (.ci/run) and the staff flow must be exercised there. Screenshots of each page land in
tests/browser/artifacts/ (git-ignored); any browser console error, Content-Security-Policy violations
included, fails the test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


def pytest_collection_modifyitems(config, items):
    if _chromium_available():
        return
    if CI:
        raise pytest.UsageError(f"CI=true requires Chromium at {CHROMIUM} for tests/browser (apt-get install chromium)")
    skip = pytest.mark.skip(reason=f"Chromium not installed at {CHROMIUM}")
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
def browser():
    # Function scope on purpose: Playwright's sync API keeps an asyncio loop running in the main
    # thread while it is open, which would break every async test that runs after a longer-lived one.
    # Playwright's sync API runs an event loop in this thread; the live server's ORM calls happen in
    # its own thread, but fixtures here touch the ORM too, which Django forbids next to a running loop.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield instance
        instance.close()
        # While the loop runs, asgiref keys this thread's Django connections by the loop's context,
        # so the ORM calls of this test's fixtures opened connections of their own; once the loop
        # stops nothing can reach them, and their sessions outlived the suite (the test database
        # then could not be dropped: "being accessed by other users"). Closed while still reachable.
        from django.db import connections

        connections.close_all()


class ConsoleErrors(list):
    def check(self):
        assert not self, f"browser console errors: {list(self)}"


@pytest.fixture
def page(browser, request):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = ConsoleErrors()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A Content-Security-Policy violation fails the test with what was blocked and where (Chromium
    # also logs one, but as a console message that names neither the directive nor the page). The
    # listener is injected by Playwright, outside the page's own policy.
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) => console.error("
        "`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} on ${e.documentURI}`));"
    )
    page.console_errors = errors
    counter = {"n": 0}

    def shot(name: str) -> Path:
        counter["n"] += 1
        path = ARTIFACTS / f"{request.node.name}-{counter['n']:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    page.shot = shot
    yield page
    context.close()
    errors.check()
