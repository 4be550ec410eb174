"""Settlement runners at once, and one killed mid-pass: each allocation settles exactly once.

These commit for real (other connections and processes must see the rows), so they run on
transactional test databases.
"""

import csv
import io
import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection, connections
from django.db.models import Count

from accounts.access import actor_from_user
from exchange.invariants import invariants_check
from exchange.models import Allocation, Journal
from settlement.models import Settlement
from settlement.runner import SettlementRunner
from settlement.services import metering_import
from tests.exchange.conftest import drain, list_capacity
from tests.exchange.test_concurrency import run_in_threads
from tests.factories import MembershipFactory
from tests.settlement.checks import journal_kinds
from tests.settlement.conftest import funded, place

pytestmark = pytest.mark.django_db(transaction=True)

# The journals an allocation's settlement writes at most once each (debt repayments may be several).
ONCE = ("settlement", "refund", "sla_credit", "payout")


def many_allocations(market, count: int, *, sellers: int = 3, holders: int = 2, short_every: int = 9) -> list[int]:
    """``count`` allocations of 1 SCU·h at 20.00 in the market's instrument, from a few new
    providers (in turn) to a few new buyers (in blocks: the first buyer holds the lowest ids),
    in a window that ended an hour ago, metered (by CSV) in full except every ``short_every``-th."""
    providers = [MembershipFactory(organisation__kind="provider", role="provider_admin") for _ in range(sellers)]
    buyers = [funded() for _ in range(holders)]
    for membership in providers:
        list_capacity(organisation=membership.organisation, instrument=market.instrument, scu_h=count)
    for n in range(count):
        place(providers[n % sellers], market.instrument, "sell", "20.00", 1)
    for n in range(count):
        place(buyers[n * holders // count], market.instrument, "buy", "20.00", 1)
    drain(market.runner)
    allocations = list(Allocation.objects.filter(trade__instrument=market.instrument).order_by("id")
                       .values_list("id", "listing_period__provider_id"))
    assert len(allocations) == count
    market.end_window()
    for membership in providers:
        rows = io.StringIO()
        writer = csv.writer(rows)
        writer.writerow(["allocation_id", "device_hours"])
        writer.writerows([a, 1] for n, (a, p) in enumerate(allocations)
                         if p == membership.organisation_id and n % short_every)
        results = metering_import(actor=actor_from_user(membership.user), text=rows.getvalue())
        assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    return [a for a, _ in allocations]


def assert_each_settled_once(ids: list[int]) -> None:
    assert set(Settlement.objects.filter(allocation_id__in=ids).values_list("allocation_id", flat=True)) == set(ids)
    assert not Allocation.objects.filter(id__in=ids, settled_at=None).exists()
    doubled = (Journal.objects.filter(allocation_id__in=ids, kind__in=ONCE).values("allocation_id", "kind")
               .annotate(n=Count("id")).filter(n__gt=1))
    assert list(doubled) == []
    # Each delivered allocation (1 SCU·h at 20.00, no fee at this size) has one settlement journal.
    delivered = set(Settlement.objects.filter(delivered_scu_h=1).values_list("allocation_id", flat=True))
    assert set(Journal.objects.filter(kind="settlement", allocation_id__in=ids).values_list("allocation_id",
                                                                                            flat=True)) == delivered
    for allocation_id in ids[:: max(1, len(ids) // 20)]:
        journal_kinds(allocation_id)  # legs sum to zero
    assert invariants_check() == []


def test_two_runners_at_once_settle_each_allocation_exactly_once(market):
    ids = many_allocations(market, 240)
    now = market.after_disputes

    def settle(_):
        return SettlementRunner(batch_size=7).settle_pass(now=now)

    settled = run_in_threads(2, settle, timeout=120)
    assert sum(settled) == 240, settled
    assert_each_settled_once(ids)
    # Undelivered (every 9th from the first): refunded in full with a 100 % credit of 2000 fen each.
    short = Settlement.objects.filter(delivered_scu_h=0)
    assert short.count() == len(range(0, 240, 9))
    assert set(short.values_list("refund_fen", "sla_credit_fen")) == {(2000, 2000)}
    assert SettlementRunner(batch_size=7).settle_pass(now=now) == 0


def test_a_second_runner_for_a_shard_stands_by_until_the_first_lets_go(transactional_db):
    first = SettlementRunner()
    assert first.acquire_shard(wait=False)

    def runner_for(shard: int):
        # On the thread's own connection, closed (and its locks let go) when the thread ends.
        return lambda _: SettlementRunner(shard=shard, shards=2).acquire_shard(wait=False)

    assert run_in_threads(1, runner_for(0)) == [False]
    assert run_in_threads(1, runner_for(1)) == [True]  # another shard is free
    first.release_shard()
    assert run_in_threads(1, runner_for(0)) == [True]


def advisory_locks(granted: bool) -> int:
    from settlement.runner import ADVISORY_LOCK_CLASS

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND granted = %s "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                       [ADVISORY_LOCK_CLASS, granted])
        return cursor.fetchone()[0]


def waiting_for_a_row_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')")
        return cursor.fetchone()[0] > 0


def wait_until(condition, *, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


def manage(*args: str) -> subprocess.CompletedProcess:
    from django.conf import settings

    from tests.processes import child_env

    return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=child_env(),
                          capture_output=True, text=True, timeout=120)


def test_two_run_settlement_processes_one_settles_the_other_takes_over(market):
    from tests.exchange.conftest import make_instrument
    from tests.processes import start, stop

    later = make_instrument(days_ahead=3)
    market.runner.load()  # the engine learns the second day
    first_ids = many_allocations(market, 20)
    # The first day ended more than a dispute window ago: the runners, on their own clock, find it due.
    market.end_window(hours_ago=24.5)
    market.instrument = later
    second_ids = many_allocations(market, 10)  # ended an hour ago: not due yet
    env = {"SETTLEMENT_INTERVAL_SECONDS": "1", "SETTLEMENT_BATCH_SIZE": "3"}
    owner = start("manage.py", "run_settlement", stderr=subprocess.DEVNULL, **env)
    standby = None
    try:
        wait_until(lambda: advisory_locks(True) == 1, what="the first runner to own the shard")
        standby = start("manage.py", "run_settlement", stderr=subprocess.DEVNULL, **env)
        wait_until(lambda: advisory_locks(False) == 1, what="the second runner to wait for the shard")
        wait_until(lambda: Settlement.objects.count() == 20, what="the first day to settle")
        assert_each_settled_once(first_ids)
        owner.terminate()
        owner.wait(timeout=15)
        wait_until(lambda: advisory_locks(False) == 0 and advisory_locks(True) == 1,
                   what="the second runner to take the shard")
        market.end_window(hours_ago=24.5)  # now the second day is due, for the runner that took over
        wait_until(lambda: Settlement.objects.count() == 30, what="the second day to settle")
    finally:
        if owner.poll() is None:
            owner.kill()
        if standby is not None:
            stop(standby)
    assert_each_settled_once(first_ids + second_ids)


def test_a_runner_killed_mid_pass_and_started_again_settles_nothing_twice(market):
    """``settle --now`` in its own process, killed with SIGKILL inside a batch's transaction after
    earlier batches committed, then run again."""
    from tests.processes import start, wait_for_other_sessions_to_end

    ids = many_allocations(market, 60, holders=3)
    first_holder = Allocation.objects.get(id=ids[0]).holder_id
    untouched = Allocation.objects.exclude(holder_id=first_holder).count()  # 40, the newest ids
    # Batches take the newest allocations first, one each here. The first buyer's escrow account,
    # locked by this transaction, stops the pass at the first batch that touches it: in the middle
    # of its transaction, after the other buyers' 40 batches committed.
    locker = connections.create_connection("default")
    try:
        with locker.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM exchange_ledgeraccount WHERE organisation_id = %s AND kind = 'escrow' "
                           "FOR UPDATE", [first_holder])
            process = start("manage.py", "settle", "--now", stderr=subprocess.DEVNULL, SETTLEMENT_BATCH_SIZE="1")
            try:
                wait_until(lambda: Settlement.objects.count() == untouched, what="the first batches to commit")
                wait_until(waiting_for_a_row_lock, what="the runner to wait inside its next batch")
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
            finally:
                if process.poll() is None:
                    process.kill()
            cursor.execute("ROLLBACK")
    finally:
        locker.close()
    wait_for_other_sessions_to_end()
    assert process.returncode == -signal.SIGKILL
    # The open batch rolled back whole: nothing of it is settled, half-settled or journaled.
    assert Settlement.objects.count() == untouched
    assert Allocation.objects.filter(settled_at__isnull=False).count() == untouched
    assert not Journal.objects.filter(allocation__holder_id=first_holder).exists()
    assert invariants_check() == []
    again = manage("settle", "--now")
    assert again.returncode == 0, again.stderr
    assert f"Settled {len(ids) - untouched} allocation(s)." in again.stdout
    assert_each_settled_once(ids)
    assert "Settled 0 allocation(s)." in manage("settle", "--now").stdout


def test_a_pass_runs_batches_on_two_connections_and_a_failed_batch_rolls_back_with_the_next(market, monkeypatch):
    """A pass outside any transaction takes the next batch on a second connection while the one
    before it writes (settlement.pipeline): one that fails rolls back whole, so does the batch
    after it, the pass raises, and the next pass settles what is left, each allocation once."""
    ids = many_allocations(market, 40)
    now = market.after_disputes
    batch_write = SettlementRunner._batch_write
    backends, batches = set(), []

    def third_fails(self, due, reads, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backends.add(cursor.fetchone()[0])
        batches.append(len(due))
        if len(batches) == 3:
            raise RuntimeError("the third batch fails")
        return batch_write(self, due, reads, **kwargs)

    monkeypatch.setattr(SettlementRunner, "_batch_write", third_fails)
    with pytest.raises(RuntimeError, match="the third batch fails"):
        SettlementRunner(batch_size=5).settle_pass(now=now)
    assert len(backends) == 2  # the batches alternate between two connections
    settled = set(Settlement.objects.values_list("allocation_id", flat=True))
    assert len(settled) == 10  # the two batches before it committed
    assert_each_settled_once(sorted(settled))  # nothing half written; check_ledger's invariants hold
    monkeypatch.setattr(SettlementRunner, "_batch_write", batch_write)
    assert SettlementRunner(batch_size=5).settle_pass(now=now) == 40 - len(settled)
    assert_each_settled_once(ids)
