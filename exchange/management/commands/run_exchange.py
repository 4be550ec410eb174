"""Start the whole exchange on one machine: web server processes and background workers.

``make run`` calls this after migrating and seeding. Ctrl-C (or ``make stop``) stops every
process it started and, when the embedded database and Valkey are in use, those too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts import demo as accounts_demo
from exchange import embedded
from marketplace.periods import DEMO_CLASS_CODE

PIDFILE = embedded.DATA_DIR / "run.pid"
# Children whose exit need not end the exchange: the demo simulator only places orders
# through the public services, so it is started again (at most every RESTART_DELAY s).
# The web processes, the engine, the settlement runner and surveillance are the exchange: if one exits,
# everything stops.
RESTARTABLE = frozenset({"simulator"})
RESTART_DELAY = 5.0


class Supervisor:
    """Starts the children and watches them: ``poll()`` says whether all should stop."""

    def __init__(self, commands: dict[str, list[str]], *, write=print, restartable=RESTARTABLE,
                 restart_delay: float = RESTART_DELAY):
        self.commands = commands
        self.children: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._write = write
        self._restartable = restartable
        self._restart_delay = restart_delay

    def start(self) -> None:
        for name, argv in self.commands.items():
            self._write(f"starting {name}: {' '.join(argv[1:4])} …")
            self.children[name] = subprocess.Popen(argv, start_new_session=True)

    def poll(self) -> bool:
        now = time.monotonic()
        for name, child in self.children.items():
            if child.poll() is None:
                continue
            if name not in self._restartable:
                self._write(f"{name} exited with code {child.returncode}; stopping the rest.")
                return True
            due = self._due.get(name)
            if due is None:
                self._due[name] = now + self._restart_delay
                self._write(f"{name} exited with code {child.returncode}; starting it again in {self._restart_delay:g} s.")
            elif now >= due:
                del self._due[name]
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.children[name] = subprocess.Popen(self.commands[name], start_new_session=True)
        return False

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def exchange_commands(*, host: str, port: int, web_processes: int, simulate: bool) -> dict[str, list[str]]:
    """Every child process of the exchange, by name: its command line (run from the project's folder)."""
    python = sys.executable
    web = [python, "-m", "exchange.serve", "--host", host, "--port", str(port)]
    commands = {f"web-{i + 1}": web for i in range(web_processes)}
    commands["engine"] = [python, "manage.py", "run_engine", "--shard", "0/1"]
    commands["settlement"] = [python, "manage.py", "run_settlement", "--shard", "0/1"]
    commands["surveillance"] = [python, "manage.py", "run_surveillance"]
    if simulate:
        commands["simulator"] = [python, "manage.py", "simulate_market"]
    return commands


class Command(BaseCommand):
    help = "Run web and background processes until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--stop-embedded", action="store_true",
                            help="stop the embedded PostgreSQL and Valkey on exit (make run: when it started them)")
        parser.add_argument("--web-processes", type=int, default=int(os.environ.get("WEB_PROCESSES", "2")))
        parser.add_argument("--no-simulation", action="store_true",
                            default=os.environ.get("SIMULATE", "1") in ("0", "false", "no"),
                            help="do not run the demo market simulator (or set SIMULATE=0)")

    def handle(self, *args, host, port, **options):
        commands = exchange_commands(host=host, port=port, web_processes=options["web_processes"],
                                     simulate=not options["no_simulation"])
        supervisor = Supervisor(commands, write=self.stdout.write)
        PIDFILE.write_text(str(os.getpid()))
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            supervisor.start()
            url = f"http://{host}:{port}/"
            if self._wait_healthy(url + "healthz", supervisor.children):
                self._banner(url)
            while not stopping:
                if supervisor.poll():
                    stopping = True
                time.sleep(0.3)
        finally:
            self.stdout.write("stopping …")
            supervisor.stop()
            if options["stop_embedded"]:
                embedded.stop()
            PIDFILE.unlink(missing_ok=True)

    def _wait_healthy(self, url: str, children) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(child.poll() is not None for name, child in children.items() if name not in RESTARTABLE):
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return True
            except OSError:
                time.sleep(0.2)
        self.stderr.write(f"{url} did not answer within 60 s")
        return False

    def _banner(self, url: str) -> None:
        lines = [f"The exchange is up at {url}  (Ctrl-C or `make stop` stops it)"]
        if settings.DEMO_MODE:
            lines.append(f"Demo class {DEMO_CLASS_CODE} trades {settings.DEMO_PERIOD_MINUTES}-minute delivery windows: "
                         f"its trades settle within about ten minutes ({url}markets/?class={DEMO_CLASS_CODE}).")
            lines.append(f"Demo logins, password {accounts_demo.DEMO_PASSWORD}:")
            for name, _kind, _city, _owner, people in accounts_demo.ORGANISATIONS:
                lines += [f"  {email:<30} {role:<15} {name}" for email, role in people]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
