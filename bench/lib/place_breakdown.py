"""Where cx_place_orders spends its time: variants of the function with one part removed.

Not a benchmark (``make bench`` does not run it):

    .venv/bin/python -m bench.lib.place_breakdown [--size 1000]

Reads exchange/sql/place_orders.sql as it is now, creates variants of cx_place_orders in a
throw-away database with one part cut out (by text substitution; a part whose text is no
longer found is skipped), and times 1,000 bids and 1,000 asks per call through each (median
of 7 rounds in rotating order, each call one commit, each call from one organisation as the
batch route sends them).
The difference to the full function is what that part costs. Printed on stdout.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.lib.harness import REPO, Environment, log  # noqa: E402

SQL = REPO / "exchange" / "sql" / "place_orders.sql"
REPEATS = 7

JOURNAL = re.compile(r"\n\s*IF v_hold > 0 THEN\s*\n\s*INSERT INTO exchange_journal.*?END IF;", re.S)
INBOX = re.compile(r"\n\s*INSERT INTO exchange_inboxcommand.*?RETURNING seq INTO v_seq;", re.S)
AVAIL_UPDATE = re.compile(r"UPDATE exchange_ledgeraccount a SET balance = a\.balance - v_hold\s*"
                          r"WHERE (a\.organisation_id = p_org\[i\] AND a\.kind = 'available' AND a\.balance >= v_hold)\s*"
                          r"RETURNING a\.id INTO v_avail;", re.S)
HELD_UPDATE = re.compile(r"UPDATE exchange_ledgeraccount a SET balance = a\.balance \+ v_hold\s*"
                         r"WHERE (a\.organisation_id = p_org\[i\] AND a\.kind = 'held')\s*RETURNING a\.id INTO v_held;", re.S)
FEE = re.compile(r"SELECT COALESCE\(\s*\(SELECT f\.taker_bps.*?INTO v_taker_bps;", re.S)
DUPLICATE = re.compile(r"SELECT o\.id INTO v_order FROM exchange_order o\s*WHERE o\.organisation_id = p_org\[i\] "
                       r"AND o\.client_order_id = p_client_id\[i\];\s*IF FOUND THEN.*?END IF;", re.S)
TOKEN = re.compile(r"IF p_token\[i\] IS NOT NULL THEN\s*SELECT t\.revoked_at.*?END IF;\s*END IF;", re.S)
CAPACITY = re.compile(r"v_listed := cx_listed_scu_h\([^;]*\);", re.S)


def variants(source: str) -> dict[str, str | None]:
    def cut(pattern, replacement=""):
        text, n = pattern.subn(replacement, source)
        return text if n else None

    return {
        "full function": source,
        "without the hold journal and its 2 legs": cut(JOURNAL),
        "without the inbox command": cut(INBOX),
        "without the 2 balance UPDATEs (SELECT instead)": (
            (lambda t: HELD_UPDATE.sub(r"SELECT a.id INTO v_held FROM exchange_ledgeraccount a WHERE \1;", t)
             if t and HELD_UPDATE.search(t) else None)(
                AVAIL_UPDATE.sub(r"SELECT a.id INTO v_avail FROM exchange_ledgeraccount a WHERE \1;", source)
                if AVAIL_UPDATE.search(source) else None)),
        "without the fee-tier lookup": cut(FEE, "v_taker_bps := 5;"),
        "without the duplicate check": cut(DUPLICATE),
        "without the token check": cut(TOKEN),
        "without the listed-capacity sum": cut(CAPACITY, "v_listed := 1000000000;"),
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1000, help="orders per call (each call from one organisation)")
    args = parser.parse_args()
    size = args.size
    calls = max(1, 1000 // size)
    with Environment("breakdown") as env:
        import psycopg

        from bench.lib.market import market_create, order, place_direct

        market = market_create(instruments=1, buyers=32, providers=32)
        ins = market.instruments[0]
        source = SQL.read_text()
        found = {}
        with psycopg.connect(env.database_url, autocommit=True) as conn:
            for n, (name, text) in enumerate(variants(source).items()):
                if text is None:
                    print(f"{name}: text not found in place_orders.sql, skipped")
                    continue
                function = f"cx_variant_{n}"
                conn.execute(text.replace("FUNCTION cx_place_orders(", f"FUNCTION {function}("))
                found[name] = function
            found["full function, FK triggers off (session_replication_role = replica)"] = "cx_place_orders"
        import exchange.gateway as gateway

        original = gateway.PLACE_SQL
        samples: dict[tuple[str, str], list[float]] = {}
        names = list(found)
        with psycopg.connect(env.database_url) as conn:
            for rep in range(REPEATS):
                # Rotate the order each round and vacuum first, so table growth and dead row
                # versions weigh on every variant alike.
                conn.commit()
                conn.autocommit = True
                conn.execute("VACUUM exchange_ledgeraccount, exchange_capacityposition")
                conn.autocommit = False
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    function = found[name]
                    replica = "FK triggers off" in name
                    gateway.PLACE_SQL = original.replace("cx_place_orders(", f"{function}(")
                    if replica:
                        conn.execute("SET session_replication_role = replica")
                        conn.commit()
                    for side, traders in (("buy", market.buyers), ("sell", market.providers)):
                        elapsed = 0.0
                        for call in range(calls):
                            trader = traders[(rep * calls + call) % len(traders)]
                            orders = [order(trader, ins, f"{function}-{rep}-{side}-{call}-{k}{'r' if replica else ''}",
                                            price_fen=1850 if side == "buy" else 2150, qty=1) for k in range(size)]
                            started = time.perf_counter()
                            counts = place_direct(conn, orders)
                            elapsed += time.perf_counter() - started
                            if counts.get("accepted") != size:
                                log(f"{name}: {counts}")
                        samples.setdefault((name, side), []).append(elapsed / calls / size * 1000)
                    if replica:
                        conn.execute("SET session_replication_role = origin")
                        conn.commit()
        results = {key: sorted(values)[len(values) // 2] for key, values in samples.items()}
        gateway.PLACE_SQL = original
        base = {side: results[("full function", side)] for side in ("buy", "sell")}
        print(f"µs per order, {size:,} orders of one organisation per call, {calls} call(s) per sample (median of "
              f"{REPEATS}); saving vs the full function")
        for name in found:
            cells = []
            for side in ("buy", "sell"):
                us = results[(name, side)] * 1000
                cells.append(f"{side} {us:6.0f} µs ({(base[side] - results[(name, side)]) * 1000:+5.0f})")
            print(f"  {name:<70} " + "   ".join(cells))


if __name__ == "__main__":
    main()
