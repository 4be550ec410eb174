"""A real exchange for the browser: web server and engine processes on the test database."""

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.processes import exchange_running


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# A refusal a page shows (a 4xx answer) is logged by Chromium as a failed load; tests cause
# some on purpose. Script errors and 5xx answers are what a browser test must never see.
REFUSED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


@pytest.fixture
def live_exchange(transactional_db):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    with exchange_running(SECURE_COOKIES="0", DEBUG="1") as base:
        yield base



CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def chromium_launched():
    """Debian's Chromium under Playwright, for one test or a whole module.

    Playwright's sync API keeps an event loop running in this thread; the test's own ORM
    calls are still plain synchronous calls, so Django is told they are allowed meanwhile.
    """
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before
        # ORM calls made while Playwright's loop ran got their own connection; close it here.
        from django.db import connections

        connections.close_all()


@pytest.fixture
def browser_page():
    with chromium_launched() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors = []
        page.on("console", lambda m: m.type == "error" and not REFUSED_LOAD.match(m.text) and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: r.status >= 500 and errors.append(f"{r.status} {r.url}"))
        yield page
    # No page may log a script error or meet a server error while a test drives it (a test
    # that causes a failed load on purpose names it in ``page.expected_errors``).
    expected = getattr(page, "expected_errors", ())
    assert [e for e in errors if not any(pattern.search(e) for pattern in expected)] == [], errors

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def artifact_path(group: str, name: str) -> str:
    """Where a browser test keeps a screenshot for people to look at: artifacts/screenshots/
    under the repository (ignored by git), kept after the run."""
    folder = ARTIFACTS / group
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / name)
