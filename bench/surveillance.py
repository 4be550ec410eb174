"""Surveillance benchmark: how fast every processed order and trade goes through the rules,
and how soon an abusive trade's alert reaches the console.

    .venv/bin/python bench/surveillance.py [--orders 100000] [--batch-size N] [--rings 40] [--load 2000]

Set-up (not timed): a throw-away database (bench/lib/harness.py), 4 continuous instruments,
32 funded buyers and 32 providers; the inbox pre-filled through ``cx_place_orders`` with
``trading_mix`` (bench/lib/market.py, about 0.44 trades per order) and processed by an
in-process engine runner, as the engine benchmark does.

1. Timed: an in-process ``SurveillanceRunner`` (``run_surveillance``'s passes) catches up on
   all of it from an empty cursor: each pass reads the processed commands and their trades,
   runs them through the book copy and every rule, writes its alerts and the cursor in one
   transaction. The cursor must then count every command and trade exactly once.
2. Live: a web process, ``run_engine`` and ``run_surveillance`` run as ``make run`` starts
   them; a regulator's WebSocket listens on ``/ws/supervision/``; a loader keeps ``--load``
   orders/s flowing into the four instruments while, on a fifth, ``--rings`` rings of three
   unrelated organisations pass 10 SCU·h round (A → B → C → A, through ``cx_place_orders``,
   each leg after the last one traded). The third trade of a ring is the abusive one; its
   delay runs from that trade's commit (its ``created_at``, set by the engine just before
   the commit: the figure errs long) to the ``alert`` event on the socket.

Figures:
  surveillance.events_per_s        commands + trades read and run through the rules per second (1).
  surveillance.alert_delay_p99_s   the 99th percentile of those delays (2).
On stderr: the split between commands and trades, CPU (this process vs PostgreSQL), the
alerts the clean mix raised, and the delays' median and maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.lib.harness import PYTHON, CpuMeter, Environment, describe_cpu, emit, log, percentile  # noqa: E402


def prefill_and_match(env: Environment, market, count: int) -> None:
    from bench.engine import drain, prefill
    from exchange.engine import EngineRunner

    prefill(env, market, count, seed=1, tag="s")
    runner = EngineRunner()
    runner.load()
    processed, elapsed = drain(runner, max_seconds=600)
    runner.close()
    log(f"engine: {processed:,} commands matched in {elapsed:.1f} s (not timed)")


def throughput(env: Environment, market, args) -> None:
    from django.db.models import Count

    from exchange.models import InboxCommand, Trade
    from supervision.models import Alert, SurveillanceCursor
    from supervision.surveillance.runner import SurveillanceRunner

    runner = SurveillanceRunner(batch_size=args.batch_size)
    runner.load()
    meter = CpuMeter({"surveillance (Python)": lambda: [__import__("os").getpid()],
                      "PostgreSQL": env.postgres_pids}).start()
    started = time.perf_counter()
    commands, trades = runner.drain()
    elapsed = time.perf_counter() - started
    usage = meter.stop()
    cursor = SurveillanceCursor.objects.get()
    expected = (InboxCommand.objects.filter(processed_at__isnull=False).count(), Trade.objects.count())
    if (cursor.commands, cursor.trades) != expected or (commands, trades) != expected:
        log(f"FAILED: surveillance read {commands:,} commands and {trades:,} trades (cursor {cursor.commands:,}, "
            f"{cursor.trades:,}); the database holds {expected[0]:,} and {expected[1]:,}")
        raise SystemExit(1)
    emit("surveillance.events_per_s", (commands + trades) / elapsed, "events/s")
    log(f"surveillance: {commands:,} commands and {trades:,} trades in {elapsed:.2f} s with batch_size "
        f"{runner.batch_size} (each read exactly once)")
    log(describe_cpu(usage, per=commands + trades, what="event"))
    raised = dict(Alert.objects.values_list("rule__code").annotate(n=Count("id")))
    log(f"alerts the clean mix raised: {raised or 'none'}")


def ring_parties(rings: int, instrument) -> list[tuple]:
    from bench.lib.market import _trader
    from exchange import ledger
    from accounts.models import Organisation
    from tests.exchange.conftest import list_capacity

    parties = []
    for i in range(rings):
        a = _trader(f"Ring {i:03d} A", Organisation.Kind.PROVIDER, "provider_admin", "sell")
        b = _trader(f"Ring {i:03d} B", Organisation.Kind.BUYER, "trader", "buy")
        c = _trader(f"Ring {i:03d} C", Organisation.Kind.BUYER, "trader", "buy")
        for trader in (a, b, c):
            ledger.deposit(organisation=Organisation.objects.get(pk=trader.organisation_id), amount_fen=10**9)
        list_capacity(organisation=Organisation.objects.get(pk=a.organisation_id), instrument=instrument, scu_h=100)
        parties.append((a, b, c))
    return parties


def regulator_token() -> str:
    from accounts.models import Organisation, User
    from accounts.services import membership_add, organisation_create, token_create

    organisation = organisation_create(name="Bench Regulator", kind=Organisation.Kind.REGULATOR,
                                       kyc_status=Organisation.Kyc.VERIFIED, city="Beijing")
    user = User.objects.create_user(email="regulator@bench.example", password=None)
    return token_create(membership=membership_add(user=user, organisation=organisation, role="regulator"),
                        name="bench", scopes=["read"])[1]


class Listener(threading.Thread):
    """A regulator's console socket; notes when each alert arrives (by the inbox seq that raised it)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.arrived, self.ready, self.stop = url, {}, threading.Event(), False

    def run(self):
        asyncio.run(self._listen())

    async def _listen(self):
        import websockets

        async with websockets.connect(self.url, max_size=2**22) as ws:
            json.loads(await ws.recv())  # hello
            self.ready.set()
            while not self.stop:
                try:
                    event = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.2))
                except TimeoutError:
                    continue
                except websockets.ConnectionClosed:
                    return
                if event.get("type") == "alert" and event.get("rule") == "wash_circular":
                    self.arrived[event["seq"]] = time.time()


def loader(env: Environment, market, rate: int, stop: threading.Event, placed: list) -> None:
    """``rate`` orders/s of trading_mix in batches of a tenth of a second."""
    import psycopg

    from bench.lib.market import place_direct, trading_mix

    batch, n = max(1, rate // 10), 0
    with psycopg.connect(env.database_url) as conn:
        next_at = time.monotonic()
        while not stop.is_set():
            place_direct(conn, trading_mix(market, batch, seed=1000 + n, tag=f"l{n}-"))
            n += 1
            placed[0] += batch
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.monotonic()))


def delays(env: Environment, market, args) -> None:
    import psycopg

    from bench.lib.market import InstrumentRef, order, place_direct
    from exchange.models import Instrument
    from tests.exchange.conftest import make_instrument

    ring_instrument = make_instrument(state=Instrument.State.CONTINUOUS, reference_fen=2000, days_ahead=9)
    ring_ref = InstrumentRef(ring_instrument.id, ring_instrument.code, 2000)
    parties = ring_parties(args.rings, ring_instrument)
    token = regulator_token()
    port = env.start_web(processes=1)
    env.start_engine()
    surveillance = env.spawn("surveillance", [PYTHON, "manage.py", "run_surveillance"], stdout=subprocess.PIPE, text=True)
    line = surveillance.stdout.readline()
    if "running" not in line:
        raise RuntimeError(f"run_surveillance did not start (exit code {surveillance.poll()})")
    listener = Listener(f"ws://127.0.0.1:{port}/ws/supervision/?token={token}")
    listener.start()
    if not listener.ready.wait(20):
        raise RuntimeError("the console socket did not open")
    stop, placed = threading.Event(), [0]
    load = threading.Thread(target=loader, args=(env, market, args.load, stop, placed), daemon=True)
    load.start()
    closing: dict[int, float] = {}  # inbox seq of each ring's third trade → its created_at (epoch s)
    started = time.monotonic()
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        for i, (a, b, c) in enumerate(parties):
            for leg, (seller, buyer) in enumerate(((a, b), (b, c), (c, a))):
                price = 2000 + leg
                sell = dict(order(seller, ring_ref, f"r{i}-{leg}s", price_fen=price, qty=10), side="sell")
                buy = dict(order(buyer, ring_ref, f"r{i}-{leg}b", price_fen=price, qty=10), side="buy")
                place_direct(conn, [sell])
                place_direct(conn, [buy])
                deadline = time.monotonic() + 30
                while True:
                    row = conn.execute("SELECT inbox_seq, extract(epoch FROM created_at) FROM exchange_trade "
                                       "WHERE instrument_id = %s AND seller_id = %s AND buyer_id = %s",
                                       [ring_ref.id, seller.organisation_id, buyer.organisation_id]).fetchone()
                    if row or time.monotonic() > deadline:
                        break
                    time.sleep(0.005)
                if row is None:
                    raise RuntimeError(f"ring {i} leg {leg} did not trade within 30 s")
            closing[row[0]] = float(row[1])
    deadline = time.monotonic() + 30
    while set(closing) - set(listener.arrived) and time.monotonic() < deadline:
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    stop.set()
    load.join(5)
    listener.stop = True
    listener.join(5)
    missing = set(closing) - set(listener.arrived)
    if missing:
        log(f"FAILED: {len(missing)} of {len(closing)} rings raised no alert on the console stream within 30 s")
        raise SystemExit(1)
    values = sorted(listener.arrived[seq] - at for seq, at in closing.items())
    emit("surveillance.alert_delay_p99_s", percentile(values, 99), "s")
    log(f"alert delays over {len(values)} rings: median {percentile(values, 50):.3f} s, max {values[-1]:.3f} s, "
        f"while {placed[0]:,} orders ({placed[0] / elapsed:,.0f}/s) flowed into the other instruments")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: SURVEILLANCE_BATCH_SIZE")
    parser.add_argument("--rings", type=int, default=40)
    parser.add_argument("--load", type=int, default=2000, help="orders/s into the other instruments during part 2")
    args = parser.parse_args()

    with Environment("surveillance") as env:
        from bench.lib.market import market_create

        market = market_create(instruments=4, buyers=32, providers=32)
        prefill_and_match(env, market, args.orders)
        throughput(env, market, args)
        if args.rings:
            delays(env, market, args)


if __name__ == "__main__":
    main()
