"""run_exchange's children and their supervision: surveillance is one of them; the simulator is
started again, the exchange's own processes are not."""

import os
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from exchange.management.commands.run_exchange import Supervisor, exchange_commands
from supervision.surveillance.runner import ADVISORY_LOCK
from tests.processes import CHILD_APPLICATION_NAME, child_env, wait_for_other_sessions_to_end

SLEEP = [sys.executable, "-c", "import time; time.sleep(30)"]
FAIL = [sys.executable, "-c", "raise SystemExit(3)"]


def poll_until(supervisor, predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.poll():
            return True
        if predicate():
            return False
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_simulator_that_exits_is_started_again_and_the_rest_keep_running():
    lines = []
    supervisor = Supervisor({"web-1": SLEEP, "engine": SLEEP, "simulator": FAIL}, write=lines.append,
                            restart_delay=0.1)
    supervisor.start()
    try:
        stopped = poll_until(supervisor, lambda: supervisor.restarts.get("simulator", 0) >= 2)
        assert not stopped
        assert all(supervisor.children[name].poll() is None for name in ("web-1", "engine"))
        assert any("simulator exited with code 3; starting it again" in line for line in lines)
    finally:
        supervisor.stop()
    assert all(child.poll() is not None for child in supervisor.children.values())


def test_an_engine_web_or_surveillance_process_that_exits_stops_everything():
    for failing in ("engine", "web-1", "surveillance"):
        lines = []
        commands = {"web-1": SLEEP, "engine": SLEEP, "surveillance": SLEEP, "simulator": SLEEP, failing: FAIL}
        supervisor = Supervisor(commands, write=lines.append, restart_delay=0.1)
        supervisor.start()
        try:
            assert poll_until(supervisor, lambda: False)
            assert lines[-1] == f"{failing} exited with code 3; stopping the rest."
        finally:
            supervisor.stop()
        assert all(child.poll() is not None for child in supervisor.children.values())


def surveillance_lock_held_by_a_child() -> bool:
    """The surveillance runner's lock, held in this database by a process this test started."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                       "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
                       "AND a.datname = current_database() AND a.application_name = %s",
                       [*ADVISORY_LOCK, CHILD_APPLICATION_NAME])
        return cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_surveillance_is_started_beside_the_engine_and_takes_its_lock(monkeypatch):
    commands = exchange_commands(host="127.0.0.1", port=8000, web_processes=2, simulate=False)
    assert set(commands) == {"web-1", "web-2", "engine", "settlement", "surveillance"}
    # Surveillance as run_exchange starts it, on the test database; the others sleep in their place.
    for name, value in child_env().items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(settings.BASE_DIR)
    lines = []
    supervisor = Supervisor({**{name: SLEEP for name in commands}, "surveillance": commands["surveillance"]},
                            write=lines.append)
    supervisor.start()
    try:
        assert not poll_until(supervisor, surveillance_lock_held_by_a_child, timeout=30), lines
        assert any(line.startswith("starting surveillance: manage.py run_surveillance") for line in lines)
    finally:
        supervisor.stop()
        wait_for_other_sessions_to_end()
