"""run_exchange's supervision: the simulator is started again, the exchange's own processes are not."""

import sys
import time

from exchange.management.commands.run_exchange import Supervisor

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


def test_an_engine_or_web_process_that_exits_stops_everything():
    for failing in ("engine", "web-1"):
        lines = []
        commands = {"web-1": SLEEP, "engine": SLEEP, "simulator": SLEEP, failing: FAIL}
        supervisor = Supervisor(commands, write=lines.append, restart_delay=0.1)
        supervisor.start()
        try:
            assert poll_until(supervisor, lambda: False)
            assert lines[-1] == f"{failing} exited with code 3; stopping the rest."
        finally:
            supervisor.stop()
        assert all(child.poll() is not None for child in supervisor.children.values())
