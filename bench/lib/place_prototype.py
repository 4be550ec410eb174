"""Measure the set-based cx_place_orders prototype (bench/lib/place_orders_setbased.sql)
against the function the exchange uses. Not a benchmark (``make bench`` does not run it):

    .venv/bin/python -m bench.lib.place_prototype

1. Equivalence: the same awkward batches (duplicates inside the batch and of stored orders,
   a revoked token, a suspended and a KYC-pending organisation, funds and capacity running
   out in the middle, market orders, a halted instrument) through both functions, each in a
   transaction that is rolled back; the result codes, and the balance and capacity changes,
   must be the same.
2. Speed: µs per order for 1 order per call, 30 orders of 30 organisations per call, and
   1,000 orders of one organisation per call (as the batch route sends them); median of 7
   rounds, the two functions interleaved, each call its own commit.
Printed on stdout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.lib.harness import BENCH, Environment, log  # noqa: E402

PROTOTYPE = BENCH / "lib" / "place_orders_setbased.sql"
COLUMNS = ("token_id", "organisation_id", "user_id", "instrument_id", "client_order_id", "side", "type",
           "tif", "post_only", "price_fen", "qty", "expires_at", "protect_ticks")


def call(conn, function: str, orders: list[dict]):
    sql = f"SELECT idx, order_id, code FROM {function}(" + ", ".join(["%s"] * 13) + ")"
    return conn.execute(sql, [[o[c] for o in orders] for c in COLUMNS]).fetchall()


def state(conn) -> tuple:
    balances = conn.execute("SELECT id, balance FROM exchange_ledgeraccount ORDER BY id").fetchall()
    positions = conn.execute("SELECT id, held FROM exchange_capacityposition ORDER BY id").fetchall()
    counts = conn.execute("SELECT (SELECT count(*) FROM exchange_order), (SELECT count(*) FROM exchange_journal), "
                          "(SELECT count(*) FROM exchange_ledgerleg), (SELECT count(*) FROM exchange_inboxcommand)").fetchone()
    return balances, positions, counts


def main() -> None:
    with Environment("prototype") as env:
        import psycopg

        from accounts.models import ApiToken, Organisation
        from accounts.services import token_revoke
        from bench.lib.market import _trader, market_create, order
        from exchange import ledger
        from exchange.models import Instrument

        market = market_create(instruments=2, buyers=32, providers=32)
        ins, halted = market.instruments
        Instrument.objects.filter(pk=halted.id).update(state=Instrument.State.HALTED)
        poor = _trader("Bench Poor Buyer", Organisation.Kind.BUYER, "trader", "buy")
        ledger.deposit(organisation=Organisation.objects.get(pk=poor.organisation_id), amount_fen=10_000)
        suspended = _trader("Bench Suspended", Organisation.Kind.BUYER, "trader", "buy")
        Organisation.objects.filter(pk=suspended.organisation_id).update(kyc_status="suspended")
        pending = _trader("Bench Pending", Organisation.Kind.BUYER, "trader", "buy")
        Organisation.objects.filter(pk=pending.organisation_id).update(kyc_status="pending")
        revoked = _trader("Bench Revoked", Organisation.Kind.BUYER, "trader", "buy")
        token = ApiToken.objects.get(pk=revoked.token_id)
        token_revoke(token=token, user=token.membership.user)
        from tests.exchange.conftest import list_capacity

        small = _trader("Bench Small Provider", Organisation.Kind.PROVIDER, "provider_admin", "sell")
        list_capacity(organisation=Organisation.objects.get(pk=small.organisation_id),
                      instrument=Instrument.objects.get(pk=ins.id), scu_h=25)

        with psycopg.connect(env.database_url, autocommit=True) as conn:
            conn.execute(PROTOTYPE.read_text())
            b0, p0 = market.buyers[0], market.providers[0]
            stored = order(b0, ins, "stored-1", price_fen=1900, qty=1)
            call(conn, "cx_place_orders", [stored])

        awkward = [
            order(b0, ins, "a1", price_fen=1900, qty=3),
            order(b0, ins, "a1", price_fen=1900, qty=3),          # duplicate inside the batch
            order(b0, ins, "stored-1", price_fen=1900, qty=1),    # duplicate of a stored order
            order(poor, ins, "p1", price_fen=2000, qty=4),         # holds 80.04 CNY of its 100 CNY
            order(poor, ins, "p2", price_fen=2000, qty=1),         # funds run out
            order(poor, ins, "p2", price_fen=1000, qty=1),         # same id again after a rejection: new order
            order(suspended, ins, "s1", price_fen=1900, qty=1),
            order(pending, ins, "k1", price_fen=1900, qty=1),
            order(revoked, ins, "r1", price_fen=1900, qty=1),
            order(small, ins, "c1", price_fen=2100, qty=20),
            order(small, ins, "c2", price_fen=2100, qty=10),       # capacity runs out
            order(small, ins, "c3", price_fen=2100, qty=5),
            order(b0, halted, "h1", price_fen=1900, qty=1),
            order(b0, ins, "m1", price_fen=None, qty=2, tif="IOC", type_="market", protect_ticks=50),
            order(p0, ins, "m2", price_fen=None, qty=2, tif="IOC", type_="market", protect_ticks=50),
            order(p0, ins, "x1", price_fen=2100, qty=7),
            order(b0, ins, "a1", price_fen=1900, qty=3),          # a third time
        ]
        outcomes = {}
        with psycopg.connect(env.database_url) as conn:
            before = state(conn)
            conn.rollback()
            for function in ("cx_place_orders", "cx_place_orders_setbased"):
                rows = call(conn, function, awkward)
                after = state(conn)
                codes = [code for _, _, code in sorted(rows)]
                ids = {i: oid for i, oid, _ in rows}
                same_id = [ids[1] == ids[0], ids[16] == ids[0], ids[5] is not None and ids[5] != ids[4]]
                deltas = ([(a, x - y) for (a, x), (_, y) in zip(after[0], before[0]) if x != y],
                          [(p, x - y) for (p, x), (_, y) in zip(after[1], before[1]) if x != y],
                          tuple(x - y for x, y in zip(after[2], before[2])))
                outcomes[function] = (codes, same_id, deltas)
                conn.rollback()
        (codes_a, ids_a, deltas_a), (codes_b, ids_b, deltas_b) = outcomes.values()
        print("equivalence on the awkward batch:", "SAME codes, duplicate ids, balance/capacity changes and row counts"
              if (codes_a, ids_a, deltas_a) == (codes_b, ids_b, deltas_b) else "DIFFERENT")
        print("  codes:", codes_a)
        if (codes_a, ids_a, deltas_a) != (codes_b, ids_b, deltas_b):
            print("  prototype codes:", codes_b, ids_a, ids_b)
            print("  changes now:", deltas_a)
            print("  changes prototype:", deltas_b)

        traders = market.buyers + market.providers
        rounds = 7
        samples: dict[tuple[str, str], list[float]] = {}
        shapes = {
            "1 order per call": (1, 30, lambda call_no, k: traders[call_no % 64]),
            "30 orders of 30 organisations per call": (30, 30, lambda call_no, k: traders[(call_no + k * 2) % 64]),
            "1,000 bids of one organisation per call": (1000, 1, lambda call_no, k: market.buyers[call_no % 32]),
            "1,000 asks of one organisation per call": (1000, 1, lambda call_no, k: market.providers[call_no % 32]),
        }
        with psycopg.connect(env.database_url) as conn:
            for rnd in range(rounds):
                for label, (size, calls, pick) in shapes.items():
                    for function in (("cx_place_orders", "cx_place_orders_setbased") if rnd % 2 == 0
                                     else ("cx_place_orders_setbased", "cx_place_orders")):
                        elapsed = 0.0
                        for c in range(calls):
                            call_no = rnd * calls + c
                            orders = []
                            for k in range(size):
                                trader = pick(call_no, k)
                                orders.append(order(trader, ins, f"{function[-4:]}{label[:6]}-{rnd}-{c}-{k}",
                                                    price_fen=1850 if trader.side == "buy" else 2150, qty=1))
                            started = time.perf_counter()
                            rows = call(conn, function, orders)
                            conn.commit()
                            elapsed += time.perf_counter() - started
                            if any(code != "accepted" for _, _, code in rows):
                                log(f"{function} {label}: {set(code for _, _, code in rows)}")
                        samples.setdefault((label, function), []).append(elapsed / calls / size * 1e6)
        print(f"µs per order, each call committed (median of {rounds} rounds, interleaved):")
        for label in shapes:
            now = sorted(samples[(label, "cx_place_orders")])[rounds // 2]
            proto = sorted(samples[(label, "cx_place_orders_setbased")])[rounds // 2]
            print(f"  {label:<42} now {now:7.0f}   set-based {proto:7.0f}   ({now / proto:.1f}×)")
        from exchange.ledger import ledger_check

        problems = ledger_check()
        print("ledger check after both:", "balanced" if not problems else problems[:3])


if __name__ == "__main__":
    main()
