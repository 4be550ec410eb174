"""Order-entry benchmark: the fast ASGI route of two ``exchange.serve`` processes.

    .venv/bin/python bench/gateway.py [--duration 10] [--skip-wrk] [--skip-engine-pass]

Set-up (not timed): a throw-away database (bench/lib/harness.py), one continuous
instrument (reference 20.00 CNY, band ±10 %), 32 funded buyer organisations and 32
providers with 10⁹ SCU·h listed, one API token each (scopes read + trade);
``WEB_PROCESSES`` (2 unless set, as ``make run``) ``python -m exchange.serve`` processes
sharing a free port (SO_REUSEPORT). The engine is
not running for the figures (order entry only, as in STACK.md), so orders wait in the inbox.

Every order is token-authenticated, passes every check of ``cx_place_orders`` (token,
organisation, duplicate, instrument state, funds or capacity hold) and is durable before
its acknowledgement. Orders alternate over the 64 organisations; each has its own
client_order_id. Prices never cross (bids 18.00–19.50, asks 20.50–22.00) except in the
open-loop mix (10 % IOC through the touch, which trade only when an engine runs).

Figures:
  gateway.rest_orders_per_s   single orders (POST /api/v1/orders/) per second answered 2xx, by
                              wrk (bench/orders.lua) with 2 threads, the best of 64 and 256
                              connections, --duration s each after a 3 s warm-up. After each wrk
                              run the orders with that run's client_order_ids are counted in the
                              database: fewer than the 2xx answers (or more than one per connection
                              beyond them) stops the benchmark with exit status 1.
  gateway.rest_ack_p99_ms     p99 acknowledgement time of the 2xx answers at 1,000 orders/s offered
                              at a constant rate (open loop, measured from each order's scheduled
                              send time; bench/lib/http.py), 15 s after a 2 s warm-up, 64
                              connections. Non-2xx answers are left out and counted on stderr; none
                              at all stops the benchmark with exit status 1.
  gateway.batch_orders_per_s  orders per second accepted through POST /api/v1/orders/batch/ with
                              1,000 orders per request, 8 connections, --duration s.
Order of the passes: the 1,000/s open loop with ``run_engine`` running (stderr only, what an
acknowledgement costs while the engine holds the accounts it writes; ``--skip-engine-pass``
skips it), the engine stopped, the open-loop figure, wrk, the open loop again (stderr only:
the same after ~100k more orders), then the batches.
On stderr: status counts, latency percentiles, CPU per order of the web processes, of
PostgreSQL and of wrk, and for the batch path a split of where the time goes (cx_place_orders
alone per call size, Python parsing per order).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.lib.harness import BENCH, CpuMeter, Environment, describe_cpu, emit, log, percentile  # noqa: E402


def ensure_wrk() -> str | None:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        log("wrk is not installed and this is not root: install it with `sudo apt-get install -y wrk`; "
            "skipping gateway.rest_orders_per_s")
        return None
    log("installing wrk with apt-get …")
    for attempt in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "wrk"]):
        if shutil.which("wrk"):
            break
        subprocess.run(attempt, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    path = shutil.which("wrk")
    if not path:
        log("could not install wrk (apt-get install -y wrk failed); skipping gateway.rest_orders_per_s")
    return path


def fail(message: str) -> NoReturn:
    """Stop the benchmark with a non-zero exit: a figure that does not count what it claims is no figure."""
    log(f"FAILED: {message}")
    raise SystemExit(1)


def count_orders(prefix: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM exchange_order WHERE client_order_id LIKE %s", [prefix + "%"])
        return cursor.fetchone()[0]


def run_wrk(wrk: str, env: Environment, config: Path, *, connections: int, duration: int, tag: str) -> dict:
    text = config.read_text()
    config.write_text(re.sub(r"^tag .*$", f"tag {tag}", text, flags=re.M))
    child = subprocess.Popen([wrk, "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
                              "-s", str(BENCH / "orders.lua"), f"http://127.0.0.1:{env.web_port}", "--", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter = CpuMeter({"web": env.web_pids, "PostgreSQL": env.postgres_pids}).start()
    out, err = child.communicate(timeout=duration + 60)
    usage = meter.stop()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, reaped by communicate()
    usage["wrk"] = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    line = next((line for line in out.splitlines() if line.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out}\n{err}")
    stats = json.loads(line[len("BENCHJSON "):])
    stats["usage"] = usage
    stats["seconds"] = stats["duration_us"] / 1e6
    stats["ok"] = stats["requests"] - stats["non2xx"]
    stats["durable"] = count_orders(tag + "-")
    # Every 2xx is an order accepted and committed before its answer, each with a client_order_id of its
    # own, so the database holds at least that many; at most one more per connection (sent, committed,
    # its answer cut off when wrk stopped).
    if not stats["ok"] <= stats["durable"] <= stats["ok"] + connections:
        fail(f"wrk -c{connections} ({tag}): {stats['ok']:,} orders answered 2xx but {stats['durable']:,} with this "
             f"run's client_order_ids in the database (expected {stats['ok']:,} to {stats['ok'] + connections:,})")
    return stats


def order_body(market, rng: random.Random, client_order_id: str, trader) -> dict:
    code = market.instruments[0].code
    if rng.random() < 0.1:  # crosses the touch: trades when an engine runs
        price = 2100 if trader.side == "buy" else 1900
        return {"instrument": code, "side": trader.side, "price": f"{price / 100:.2f}", "qty": rng.randint(1, 5),
                "tif": "IOC", "client_order_id": client_order_id}
    price = 1800 + rng.randint(0, 150) if trader.side == "buy" else 2050 + rng.randint(0, 150)
    return {"instrument": code, "side": trader.side, "price": f"{price / 100:.2f}", "qty": rng.randint(1, 5),
            "client_order_id": client_order_id}


def open_loop_pass(env: Environment, market, *, tag: str, rate: float, duration: float, warmup: float) -> dict:
    from bench.lib import http

    traders = market.traders
    rng = random.Random(7)
    port = env.web_port

    def make(i: int) -> bytes:
        trader = traders[i % len(traders)]
        body = json.dumps(order_body(market, rng, f"{tag}-{i}", trader), separators=(",", ":")).encode()
        return http.post(port, "/api/v1/orders/", trader.token, body)

    meter = CpuMeter({"web": env.web_pids, "PostgreSQL": env.postgres_pids, "load generator": lambda: [os.getpid()]}
                     | ({"engine": lambda: [env.children["engine"].pid]} if "engine" in env.children else {})).start()
    result = http.run(http.open_loop(port, make, rate=rate, duration=duration, warmup=warmup, connections=64))
    usage = meter.stop()
    # An acknowledgement is a 2xx: a refusal can come back faster than an accepted order's commit.
    lat = sorted(ms for ms, status in zip(result.latencies_ms, result.latency_statuses) if 200 <= status < 300)
    late = sorted(result.lateness_ms)
    ok = len(lat)
    non2xx = len(result.latencies_ms) - ok
    summary = {
        "p50": percentile(lat, 50), "p90": percentile(lat, 90), "p99": percentile(lat, 99), "p999": percentile(lat, 99.9),
        "max": lat[-1] if lat else None, "late_p50": percentile(late, 50), "late_p99": percentile(late, 99),
        "late_max": late[-1] if late else None, "counted": len(result.latencies_ms), "ok": ok, "non2xx": non2xx,
        "statuses": result.statuses, "errors": result.errors, "max_queue": result.max_queue, "usage": usage,
    }
    if not lat:
        fail(f"open loop {tag}: no 2xx answer among {len(result.latencies_ms):,} (statuses {result.statuses}, "
             f"connection errors {result.errors})")
    log(f"open loop {rate:,.0f}/s for {duration - warmup:.0f} s (+{warmup:.0f} s warm-up): {ok:,} 2xx counted, "
        f"{non2xx:,} non-2xx left out, statuses {result.statuses}, connection errors {result.errors}; 2xx ack from scheduled time p50 "
        f"{summary['p50']:.2f} ms, p90 {summary['p90']:.2f}, p99 {summary['p99']:.2f}, p99.9 {summary['p999']:.2f}, "
        f"max {summary['max']:.2f}; generator lateness p50 {summary['late_p50']:.2f} ms, p99 {summary['late_p99']:.2f}, "
        f"max {summary['late_max']:.2f}; most queued for a connection {result.max_queue}")
    log("  " + describe_cpu(usage, per=max(1, len(lat)), what="order"))
    return summary


def batch_bodies(market, *, count: int, per_request: int, tag: str) -> list[tuple[object, bytes]]:
    rng = random.Random(11)
    traders = market.traders
    out = []
    for r in range(count):
        trader = traders[r % len(traders)]
        orders = [order_body(market, rng, f"{tag}-{r}-{k}", trader) for k in range(per_request)]
        for o in orders:  # no IOC in the batch figure: plain resting orders
            o.pop("tif", None)
            o["price"] = "18.50" if trader.side == "buy" else "21.50"
        out.append((trader, json.dumps({"orders": orders}, separators=(",", ":")).encode()))
    return out


def batch_split(env: Environment, market) -> None:
    """Where a 1,000-order batch spends its time, outside the servers."""
    import psycopg

    from accounts.access import actor_from_token
    from bench.lib.market import order, place_direct
    from exchange.gateway import instruments, order_request_parse

    ins = market.instruments[0]
    with psycopg.connect(env.database_url) as conn:
        for side, traders in (("buy", market.buyers), ("sell", market.providers)):
            timings = []
            for rep in range(3):
                orders = [order(traders[rep], ins, f"split-{side}-{rep}-{k}", price_fen=1850 if side == "buy" else 2150,
                                qty=1) for k in range(1000)]
                started = time.perf_counter()
                place_direct(conn, orders)
                timings.append(time.perf_counter() - started)
            log(f"  cx_place_orders alone, 1,000 {side} orders of one organisation, one commit: "
                f"{min(timings) * 1000:.0f} ms (best of 3) = {min(timings) * 1000:.0f} µs/order in PostgreSQL")
        for size in (1, 10, 100):
            timings = []
            for rep in range(max(3, 300 // size)):
                trader = market.traders[rep % len(market.traders)]
                orders = [order(trader, ins, f"size{size}-{rep}-{k}", price_fen=1850 if trader.side == "buy" else 2150,
                                qty=1) for k in range(size)]
                started = time.perf_counter()
                place_direct(conn, orders)
                timings.append(time.perf_counter() - started)
            timings.sort()
            log(f"  cx_place_orders alone, {size} order(s) per call and commit: median {timings[len(timings) // 2] * 1000:.2f} ms "
                f"per call = {timings[len(timings) // 2] / size * 1e6:.0f} µs/order")
    actor = actor_from_token(market.buyers[0].token)
    instruments.get(ins.code)
    items = [{"instrument": ins.code, "side": "buy", "price": "18.50", "qty": 1, "client_order_id": f"x{k}"}
             for k in range(10_000)]
    started = time.perf_counter()
    for item in items:
        order_request_parse(item, actor=actor, lookup=instruments.cached)
    parse_us = (time.perf_counter() - started) / len(items) * 1e6
    body = json.dumps({"orders": items[:1000]}).encode()
    started = time.perf_counter()
    for _ in range(20):
        json.loads(body)
    decode_us = (time.perf_counter() - started) / 20 / 1000 * 1e6
    log(f"  Python per order, in this process: order_request_parse {parse_us:.1f} µs, json.loads of the body {decode_us:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run and for the batch run")
    parser.add_argument("--skip-wrk", action="store_true")
    parser.add_argument("--skip-engine-pass", action="store_true",
                        help="skip the first open loop, the one with run_engine running (stderr only)")
    args = parser.parse_args()

    with Environment("gateway") as env:
        from bench.lib import http
        from bench.lib.market import market_create

        market = market_create(instruments=1, buyers=32, providers=32)
        env.start_web()

        if not args.skip_engine_pass:
            env.start_engine()
            log("open loop with run_engine running (not a figure):")
            open_loop_pass(env, market, tag="olE", rate=1000, duration=12, warmup=2)
            env.stop("engine")

        # ---- 2 (first, on a fresh database). acknowledgement time at 1,000 orders/s offered (open loop)
        summary = open_loop_pass(env, market, tag="ol", rate=1000, duration=17, warmup=2)
        emit("gateway.rest_ack_p99_ms", summary["p99"], "ms")
        log(f"gateway.rest_ack_p99_ms: over the {summary['ok']:,} 2xx answers; {summary['non2xx']:,} non-2xx answers "
            f"and {summary['errors']} connection errors left out")

        # ---- 1. single orders at the peak (wrk)
        wrk = None if args.skip_wrk else ensure_wrk()
        if wrk:
            with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as fh:
                fh.write(f"instrument {market.instruments[0].code}\ntag warm\n")
                for trader in market.traders:
                    fh.write(f"{trader.side} {trader.token}\n")
                config = Path(fh.name)
            try:
                warm = run_wrk(wrk, env, config, connections=64, duration=3, tag="w0")
                log(f"wrk warm-up: {warm['ok'] / warm['seconds']:,.0f} 2xx/s")
                best = None
                for connections in (64, 256):
                    stats = run_wrk(wrk, env, config, connections=connections, duration=args.duration, tag=f"w{connections}")
                    rate = stats["ok"] / stats["seconds"]
                    errors = {k: stats[k] for k in ("non2xx", "connect", "read", "write", "timeout") if stats[k]}
                    log(f"wrk -t2 -c{connections} -d{args.duration}s: {stats['requests']:,} requests, {rate:,.0f} 2xx/s, "
                        f"latency p50 {stats['p50_us'] / 1000:.1f} ms, p90 {stats['p90_us'] / 1000:.1f}, "
                        f"p99 {stats['p99_us'] / 1000:.1f}, max {stats['max_us'] / 1000:.1f}; "
                        f"{stats['durable']:,} orders in the database with this run's client_order_ids; "
                        + (f"ERRORS {errors}" if errors else "no errors, no non-2xx"))
                    log("  " + describe_cpu(stats["usage"], per=max(1, stats["ok"]), what="order"))
                    if best is None or rate > best[0]:
                        best = (rate, connections, errors)
                emit("gateway.rest_orders_per_s", best[0], "orders/s")
                log(f"gateway.rest_orders_per_s: best at {best[1]} connections"
                    + (f" — that run had errors {best[2]}" if best[2] else ""))
            finally:
                config.unlink(missing_ok=True)

        if wrk:
            log("the same open loop again, after the wrk runs (not a figure):")
            open_loop_pass(env, market, tag="ol2", rate=1000, duration=12, warmup=2)

        # ---- 3. batches of 1,000
        bodies = batch_bodies(market, count=400, per_request=1000, tag="b")
        requests = [http.post(env.web_port, "/api/v1/orders/batch/", trader.token, body) for trader, body in bodies]
        warm = http.run(http.closed_loop(env.web_port, requests[:4], connections=4, duration=30))
        meter = CpuMeter({"web": env.web_pids, "PostgreSQL": env.postgres_pids, "load generator": lambda: [os.getpid()]}).start()
        result = http.run(http.closed_loop(env.web_port, requests[4:], connections=8, duration=args.duration,
                                           count_tokens=(b'"status":"accepted"', b'"status":"rejected"')))
        usage = meter.stop()
        accepted = result.counts['"status":"accepted"']
        rejected = result.counts['"status":"rejected"']
        emit("gateway.batch_orders_per_s", accepted / result.elapsed_s, "orders/s")
        log(f"batch: {result.responses} requests of 1,000 in {result.elapsed_s:.1f} s, statuses {result.statuses}; "
            f"{accepted:,} orders accepted, {rejected:,} rejected ({accepted / result.elapsed_s:,.0f} orders/s, "
            f"{result.responses / result.elapsed_s:.1f} requests/s)" + (f"; bodies {result.bodies}" if result.bodies else ""))
        log("  " + describe_cpu(usage, per=max(1, accepted), what="order"))
        del warm
        batch_split(env, market)


if __name__ == "__main__":
    main()
