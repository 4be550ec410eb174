"""A real exchange for the browser: web server and engine processes on the test database."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from django.conf import settings


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    from django.db import connection

    params = connection.settings_dict
    return f"postgresql://{params['USER'] or 'postgres'}@{params['HOST']}:{params['PORT']}/{params['NAME']}"


@pytest.fixture
def live_exchange(transactional_db):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "CHANNEL_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"], "SECURE_COOKIES": "0",
           "DEBUG": "1"}
    root = settings.BASE_DIR
    processes = [
        subprocess.Popen([sys.executable, "-m", "exchange.serve", "--port", str(port)], cwd=root, env=env),
        subprocess.Popen([sys.executable, "manage.py", "run_engine"], cwd=root, env=env),
    ]
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
    _wait_for_other_sessions_to_end()


def _wait_for_other_sessions_to_end(timeout: float = 5.0) -> None:
    """PostgreSQL ends a dead client's backend a moment later; the flush and the final
    DROP DATABASE must not find it still there."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)



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

