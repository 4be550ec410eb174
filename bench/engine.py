"""Engine runner benchmark: inbox → matching → one transaction → events published.

    .venv/bin/python bench/engine.py [--orders 100000] [--max-seconds 60] [--profile-orders 10000]
                                     [--batch-size N (default: the ENGINE_BATCH_SIZE setting)]

Set-up (not timed): a throw-away database (see bench/lib/harness.py), 4 continuous
instruments, 32 funded buyers, 32 providers with huge listed capacity; the inbox is
pre-filled through ``cx_place_orders`` (1,000 orders per call, two connections) with a mix
that trades (bench/lib/market.py ``trading_mix``: GTC bids and asks overlapping around the
reference price, 10 % IOC through the touch, 4 % market IOC; about 0.44 trades per order).

Timed: an in-process ``EngineRunner()`` with ``run_engine``'s batches (ENGINE_BATCH_SIZE):
``load()``, then ``drain()`` as ``run_engine`` runs it (each batch is matched while the one
before it is written by the writer thread) until the inbox is empty or ``--max-seconds``
have passed — every batch commits order states, trades, allocations, ledger journals,
capacity positions and the instrument row, then publishes private events (channel layer) and
market data (Redis PUBLISH) after commit.

Figures:
  engine.end_to_end_orders_per_s   inbox commands processed per second of wall time.
After each drain, the invariants ``check_ledger`` verifies (exchange/invariants.py): any problem
ends the benchmark with exit status 1 and the problems on stderr.
On stderr: trades/s, CPU split (this process vs PostgreSQL), and the top
costs (cProfile) of a second drain of ``--profile-orders`` more orders, one batch at a time
(``step()``) so that every stage runs in the profiled thread.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.lib.harness import CpuMeter, Environment, describe_cpu, emit, log  # noqa: E402


def prefill(env: Environment, market, count: int, *, seed: int, tag: str) -> None:
    """``count`` orders of ``trading_mix`` through cx_place_orders, 1,000 per call, on two
    connections (each for the organisations of one parity, so they never wait on each other)."""
    import threading

    import psycopg

    from bench.lib.market import place_direct, trading_mix

    orders = trading_mix(market, count, seed=seed, tag=tag)
    started = time.monotonic()
    totals: dict[str, int] = {}
    lock = threading.Lock()

    def place(part: list[dict]) -> None:
        with psycopg.connect(env.database_url) as conn:
            for i in range(0, len(part), 1000):
                counts = place_direct(conn, part[i:i + 1000])
                with lock:
                    for code, n in counts.items():
                        totals[code] = totals.get(code, 0) + n

    threads = [threading.Thread(target=place, args=([o for o in orders if o["organisation_id"] % 2 == parity],))
               for parity in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    log(f"prefill: {count:,} orders through cx_place_orders in {elapsed:.1f} s ({count / elapsed:,.0f}/s): {totals}")
    if totals.get("accepted", 0) != count:
        log("WARNING: not every pre-filled order was accepted")


def drain(runner, *, max_seconds: float) -> tuple[int, float]:
    """``runner.drain()`` (as ``run_engine`` does) until the inbox is empty or ``max_seconds`` have
    passed (the batches in progress finish)."""
    started = time.perf_counter()
    total = runner.drain(stop=lambda: time.perf_counter() - started >= max_seconds)
    return total, time.perf_counter() - started


def drain_profiled(runner, *, max_seconds: float, profile: cProfile.Profile) -> tuple[int, float]:
    """One batch at a time with ``step()`` (all in this thread, so the profile sees every stage)."""
    started = time.perf_counter()
    total = 0
    profile.enable()
    while time.perf_counter() - started < max_seconds and (n := runner.step()):
        total += n
    profile.disable()
    return total, time.perf_counter() - started


def check_invariants(when: str) -> None:
    """``check_ledger``'s invariants; any problem stops the benchmark with exit status 1 (a rate is worth
    nothing if what was written is wrong)."""
    from exchange.invariants import invariants_check

    started = time.perf_counter()
    problems = invariants_check()
    if problems:
        log(f"FAILED: {len(problems)} invariant problem(s) {when}:\n" + "\n".join(f"- {p}" for p in problems[:20]))
        raise SystemExit(1)
    log(f"invariants hold {when} (check_ledger's checks, {time.perf_counter() - started:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=60, help="stop the timed drain after this long")
    parser.add_argument("--profile-orders", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()

    with Environment("engine") as env:
        from django.db import connection

        from bench.lib.market import market_create
        from exchange.engine import EngineRunner
        from exchange.models import InboxCommand, Trade

        market = market_create(instruments=4, buyers=32, providers=32)
        prefill(env, market, args.orders, seed=1, tag="e")

        runner = EngineRunner(batch_size=args.batch_size)
        runner.load()
        # Warm up outside the timing: numba compile/cache load, first queries.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        meter = CpuMeter({"bench process (Python)": lambda: [__import__("os").getpid()],
                          "PostgreSQL": env.postgres_pids}).start()
        processed, elapsed = drain(runner, max_seconds=args.max_seconds)
        usage = meter.stop()
        runner.close()
        trades = Trade.objects.count()
        pending = InboxCommand.objects.filter(processed_at__isnull=True).count()
        check_invariants("after the timed drain")  # before the figure: no figure for a wrong outcome
        emit("engine.end_to_end_orders_per_s", processed / elapsed, "orders/s")
        log(f"engine: {processed:,} commands in {elapsed:.2f} s with batch_size {runner.batch_size}; "
            f"{trades:,} trades ({trades / elapsed:,.0f} trades/s); "
            + (f"stopped after {args.max_seconds:.0f} s with {pending:,} commands still pending (the rate is over "
               "the commands processed)" if pending else "inbox drained"))
        log(describe_cpu(usage, per=processed, what="order"))

        if args.profile_orders:
            prefill(env, market, args.profile_orders, seed=2, tag="p")
            profile = cProfile.Profile()
            before = Trade.objects.count()
            runner.load()  # books rebuilt: the resting orders of the first drain (and any left pending) stay
            with connection.cursor() as cursor:  # start from the new orders only
                cursor.execute("UPDATE exchange_inboxcommand SET processed_at = now() WHERE processed_at IS NULL "
                               "AND seq < (SELECT min(seq) FROM exchange_inboxcommand i JOIN exchange_order o "
                               "ON o.id = i.order_id WHERE o.client_order_id LIKE 'p%%')")
            processed, elapsed = drain_profiled(runner, max_seconds=args.max_seconds / 2, profile=profile)
            log(f"profiled drain: {processed:,} commands, {Trade.objects.count() - before:,} trades in {elapsed:.2f} s "
                f"({processed / elapsed:,.0f}/s one batch at a time under cProfile; the profiler slows Python, "
                "not PostgreSQL)")
            sections = (("tottime", "own time", (18,)),
                        ("cumulative", "cumulative time, project code only", (r"/(exchange|marketplace|matching)/", 25)))
            for key, title, restrictions in sections:
                out = io.StringIO()
                stats = pstats.Stats(profile, stream=out)
                stats.sort_stats(key).print_stats(*restrictions)
                text = out.getvalue()
                log(f"---- top functions by {title}\n" + text[text.find("   ncalls"):].rstrip())
            check_invariants("after the profiled drain")


if __name__ == "__main__":
    main()
