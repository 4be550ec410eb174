"""Browser pages benchmark: the trading terminal's first paint of data, and page latency under readers.

    .venv/bin/python bench/web.py [--loads 10] [--readers 50] [--duration 20]

Set-up (not timed): a throw-away database (bench/lib/harness.py) with the demo data
(``manage.py seed_demo`` in demo mode; ``collectstatic``), then what ``make run`` starts — ``WEB_PROCESSES`` web processes (2 unless
set), the engine, the settlement and surveillance runners, and the market simulator — until the
simulator has traded for a while. The terminal measured is the instrument with the most
trades.

Figures:
  web.terminal_ready_ms  median over --loads navigations, each in a new browser context
                         (nothing cached), from navigation start to the moment the terminal's
                         book, tape and candle chart all show data (the page marks it:
                         ``performance.mark("cx-terminal-ready")`` in static/js/terminal.js), in
                         Debian's headless Chromium. A load without the mark within 10 s stops
                         the benchmark with exit status 1.
  web.page_p99_ms        p99 time to the whole answer of GET /markets/ and GET /markets/<code>/
                         (alternating, the code among the trading instruments) for --readers
                         people reading at once for --duration s while the simulator trades:
                         each on its own keep-alive connection, reading each page for 0.5–1.5 s
                         (uniformly at random) before asking for the next, so about --readers
                         pages per second. Any answer but 200 stops the benchmark with exit
                         status 1.
On stderr: every load's time, the percentiles of each page, pages per second, and the
trades the simulator made meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lib.harness import PYTHON, REPO, Environment, emit, log, percentile  # noqa: E402

READY_JS = "() => (performance.getEntriesByName('cx-terminal-ready')[0] || {}).startTime || null"


def fail(message: str):
    log(f"FAILED: {message}")
    sys.exit(1)


def wait_for_trading(env: Environment, *, trades: int, timeout: float) -> list[str]:
    """Instrument codes with trades, busiest first, once the simulator has made ``trades``."""
    from django.db.models import Count

    from exchange.models import Instrument, Trade

    deadline = time.monotonic() + timeout
    while Trade.objects.count() < trades:
        if time.monotonic() > deadline:
            fail(f"the simulator made {Trade.objects.count()} trades in {timeout:.0f} s, fewer than {trades}")
        for name, child in env.children.items():
            if child.poll() is not None:
                fail(f"{name} exited with code {child.returncode}")
        time.sleep(1)
    busiest = (Instrument.objects.filter(state=Instrument.State.CONTINUOUS).annotate(n=Count("trades"))
               .filter(n__gt=0).order_by("-n").values_list("code", flat=True))
    return list(busiest)


def terminal_loads(base: str, code: str, loads: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        fail("Debian's chromium is not installed (apt-get install chromium)")
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for i in range(loads + 1):
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/markets/{code}/", wait_until="commit")
            try:
                page.wait_for_function(READY_JS, timeout=10_000, polling=20)
            except Exception:
                fail(f"load {i}: the terminal showed no book, tape and chart within 10 s ({errors or 'no script error'})")
            if errors:
                fail(f"load {i}: script errors {errors}")
            ready = page.evaluate(READY_JS)
            context.close()
            if i == 0:
                log(f"first load (compiles templates, warms the web processes; not counted): {ready:.0f} ms")
                continue
            times.append(ready)
        browser.close()
    return times


async def readers(port: int, paths: list[str], *, count: int, duration: float) -> dict[str, list[float]]:
    from bench.lib import http

    latencies: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + duration

    async def reader(k: int) -> None:
        conn = await http.connect(port)
        rng = random.Random(k)
        i = k
        while time.perf_counter() < deadline:
            path = paths[0] if i % 2 == 0 else rng.choice(paths[1:])
            i += 1
            started = time.perf_counter()
            status, _ = await conn.request(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n".encode())
            elapsed = (time.perf_counter() - started) * 1000
            statuses[status] = statuses.get(status, 0) + 1
            latencies.setdefault("/markets/" if path == paths[0] else "/markets/<code>/", []).append(elapsed)
            await asyncio.sleep(rng.uniform(0.5, 1.5))  # a person reads the page before the next
        conn.transport.close()

    async def staggered(k: int) -> None:
        await asyncio.sleep(k / count)  # not all at once: people arrive over a second
        await reader(k)

    await asyncio.gather(*(staggered(k) for k in range(count)))
    if set(statuses) != {200}:
        fail(f"answers other than 200: {statuses}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--duration", type=int, default=20)
    args = parser.parse_args()
    # What make run sets: the demo market, its short auctions and delivery windows.
    os.environ.update({"DEMO_MODE": "1", "SECURE_COOKIES": "0", "OPENING_AUCTION_SECONDS": "20"})

    with Environment("web") as env:
        started = time.monotonic()
        for command in (["collectstatic", "--noinput"], ["seed_demo"]):  # as make run does
            subprocess.run([PYTHON, "manage.py", *command], cwd=REPO, env=env.env, check=True, stdout=subprocess.DEVNULL)
        log(f"[web] demo data seeded in {time.monotonic() - started:.1f} s")
        port = env.start_web()
        env.start_engine()
        for name in ("run_settlement", "run_surveillance"):
            env.spawn(name, [PYTHON, "manage.py", name] + (["--shard", "0/1"] if name == "run_settlement" else []))
        env.spawn("simulator", [PYTHON, "manage.py", "simulate_market"])
        from exchange.models import Trade

        codes = wait_for_trading(env, trades=200, timeout=240)
        if not codes:
            fail("no instrument in continuous trading has trades")
        base = f"http://127.0.0.1:{port}"
        log(f"[web] the simulator has traded: {Trade.objects.count()} trades; the terminal of {codes[0]}")

        times = terminal_loads(base, codes[0], args.loads)
        log("terminal loads (ms): " + ", ".join(f"{t:.0f}" for t in times))
        emit("web.terminal_ready_ms", round(statistics.median(times), 1), "ms")

        before = Trade.objects.count()
        paths = ["/markets/"] + [f"/markets/{code}/" for code in codes[:8]]
        from bench.lib import http

        latencies = http.run(readers(port, paths, count=args.readers, duration=args.duration))
        every = sorted(t for values in latencies.values() for t in values)
        for page, values in sorted(latencies.items()):
            values.sort()
            log(f"{page}: {len(values):,} answers, p50 {percentile(values, 50):.0f} ms, p90 {percentile(values, 90):.0f}, "
                f"p99 {percentile(values, 99):.0f}, max {values[-1]:.0f}")
        log(f"{len(every) / args.duration:,.0f} pages/s by {args.readers} readers; the simulator made "
            f"{Trade.objects.count() - before} trades meanwhile")
        emit("web.page_p99_ms", round(percentile(every, 99), 1), "ms")


if __name__ == "__main__":
    main()
