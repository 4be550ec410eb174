"""The project's own processes (web server, engine runner) on the test database."""

import contextlib
import os
import socket
import subprocess
import sys
import time

from django.conf import settings


def database_url() -> str:
    """The test database, as DATABASE_URL for a child process."""
    from django.db import connection

    params = connection.settings_dict
    return f"postgresql://{params['USER'] or 'postgres'}@{params['HOST']}:{params['PORT']}/{params['NAME']}"


# The application name (libpq's PGAPPNAME) of every child's database session, so that waiting
# for the children's sessions to end does not wait for connections of the test process itself.
CHILD_APPLICATION_NAME = "exchange-test-child"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that works on this test run's database and channel layer."""
    return {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
            "CHANNEL_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
            "PGAPPNAME": CHILD_APPLICATION_NAME, **extra}


def start(*args: str, stderr=None, **extra_env: str) -> subprocess.Popen:
    """``python <args>`` in the project's folder (``manage.py run_engine``, ``-m exchange.serve …``)."""
    return subprocess.Popen([sys.executable, *args], cwd=settings.BASE_DIR, env=child_env(**extra_env), stderr=stderr)


def wait_for_other_sessions_to_end(timeout: float = 5.0) -> None:
    """PostgreSQL ends a dead child's backend a moment later; the flush and the final
    DROP DATABASE must not find it still there."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name = %s", [CHILD_APPLICATION_NAME])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(*, stderr=None, **extra_env: str):
    """``python -m exchange.serve`` on a free port of 127.0.0.1: (process, base URL), once it answers."""
    import requests

    port = free_port()
    process = start("-m", "exchange.serve", "--host", "127.0.0.1", "--port", str(port), stderr=stderr, **extra_env)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"exchange.serve exited with code {process.returncode}")
        try:
            if requests.get(f"{base_url}/healthz", timeout=5).status_code == 200:
                return process, base_url
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or its first answer is slow on a busy machine
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("exchange.serve did not answer in 60 s")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    wait_for_other_sessions_to_end()


@contextlib.contextmanager
def exchange_running(**extra_env: str):
    """A web server and an engine runner, as `make run` starts them, on the test database:
    the base URL once the server answers; both stop afterwards."""
    web, base_url = serve(**extra_env)
    engine = start("manage.py", "run_engine", **extra_env)
    try:
        yield base_url
    finally:
        engine.terminate()
        try:
            engine.wait(timeout=10)
        except subprocess.TimeoutExpired:
            engine.kill()
        stop(web)
