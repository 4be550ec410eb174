"""The settlement runner and the engine write at once without waiting on each other in a cycle.

Both lock ledger accounts and the provenance chain's head (a transaction-scoped advisory lock
held to the commit). The engine takes the head when it allocates a batch's trades and the
accounts last; a runner that locked its accounts first and the head at its end could hold
what the engine waits for while waiting for what the engine holds.
"""

import threading
import time

import pytest
from django.db import connection, connections

from accounts.access import actor_from_user
from exchange.invariants import invariants_check
from exchange.models import Trade
from marketplace.services.provenance import PROVENANCE_LOCK
from settlement.models import Settlement
from settlement.runner import SettlementRunner
from settlement.services import metering_report
from tests.exchange.conftest import list_capacity, make_instrument
from tests.exchange.test_concurrency import run_in_threads
from tests.settlement.conftest import allocation_of, place

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_for_the_provenance_head() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                       "AND ((classid::bigint << 32) | objid::bigint) = %s", [PROVENANCE_LOCK])
        return cursor.fetchone()[0]


def wait_until(condition, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_engine_batch_and_a_settlement_batch_for_the_same_organisations_both_commit(market, seller, holder):
    # Yesterday's trade is due to settle; today's orders, of the same two organisations, wait for the engine.
    today = make_instrument(days_ahead=3)
    market.runner.load()
    list_capacity(organisation=seller.organisation, instrument=today, scu_h=100)
    due = allocation_of(market.trade(seller, holder, 10, "20.00"))
    metering_report(actor=actor_from_user(seller.user), allocation_id=due.id, device_hours="10", now=market.during)
    now = market.after_disputes
    place(seller, today, "sell", "20.00", 5)
    place(holder, today, "buy", "20.00", 5)

    # Order the two deterministically: a third session holds the provenance head while the engine's
    # batch reaches it, then the settlement batch; then lets go.
    gate = connections.create_connection("default")
    gate.inc_thread_sharing()  # opened here, let go by the opener thread
    with gate.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PROVENANCE_LOCK])

    def work(i):
        if i == 0:
            return market.runner.step()
        wait_until(lambda: waiting_for_the_provenance_head() == 1)  # the engine's batch is at the head
        return SettlementRunner().settle_pass(now=now)

    def open_the_gate():
        # Both batches wait for the head, the engine's first; whatever each locked before it, it holds.
        wait_until(lambda: waiting_for_the_provenance_head() == 2)
        with gate.cursor() as cursor:
            cursor.execute("ROLLBACK")

    opener = threading.Thread(target=open_the_gate)
    opener.start()
    try:
        results = run_in_threads(2, work, timeout=60)
    finally:
        opener.join(30)
        gate.close()
        gate.dec_thread_sharing()
    assert results == [2, 1]  # the engine's two commands; the runner's one allocation
    assert Trade.objects.filter(instrument=today).count() == 1
    assert Settlement.objects.get().allocation_id == due.id
    assert invariants_check() == []
