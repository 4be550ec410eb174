"""A real exchange for the browser: web server and engine processes on the test database."""

import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.processes import start, wait_for_other_sessions_to_end


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_exchange(transactional_db):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    port = _free_port()
    env = {"SECURE_COOKIES": "0", "DEBUG": "1"}
    processes = [start("-m", "exchange.serve", "--port", str(port), **env), start("manage.py", "run_engine", **env)]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                for p in processes:
                    p.kill()
                raise RuntimeError("the exchange did not start for the browser test")
            time.sleep(0.2)
    yield base
    for p in processes:
        p.terminate()
    for p in processes:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    wait_for_other_sessions_to_end()



@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the test's own ORM
    # calls are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        yield page
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connection; close it here.
        from django.db import connections

        connections.close_all()

