"""Races, restarts and shards, on real PostgreSQL connections (threads and processes)."""

import threading
import time
import traceback

import pytest
from django.db import connection, connections

from exchange import ledger
from exchange.engine import EngineRunner, shard_of
from exchange.models import CapacityPosition, InboxCommand, Instrument, Order, Trade
from exchange.services import order_place
from accounts.access import actor_from_user
from exchange.errors import AppError
from tests.exchange.conftest import drain, list_capacity, make_instrument

pytestmark = pytest.mark.django_db(transaction=True)


def run_in_threads(count: int, work, *, timeout: float = 60) -> list:
    """``work(i)`` on ``count`` threads started together; each one's result, or the code of the
    AppError it raised (a refusal is an outcome of a race). A racer that dies of anything else,
    or is still running after ``timeout`` seconds, fails the test."""
    results: list = [None] * count
    died: list[tuple[int, BaseException]] = []
    barrier = threading.Barrier(count)

    def target(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except AppError as exc:
            results[i] = exc.code
        except BaseException as exc:  # recorded here: an exception would otherwise end only its thread
            died.append((i, exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [i for i, thread in enumerate(threads) if thread.is_alive()]
    if died or stuck:
        reports = [f"racer {i} died:\n" + "".join(traceback.format_exception(exc))
                   for i, exc in sorted(died, key=lambda d: d[0])]
        if stuck:
            reports.append(f"racers {stuck} still running after {timeout} s")
        pytest.fail("\n".join(reports), pytrace=False)
    return results


def test_a_racer_dying_of_an_unexpected_error_fails_the_race_and_a_refusal_does_not(db):
    def work(i):
        if i == 1:
            raise AppError("insufficient_funds", "refused")
        if i == 2:
            raise ZeroDivisionError("racer 2 broke")
        return i

    with pytest.raises(pytest.fail.Exception, match=r"(?s)racer 2 died:.*ZeroDivisionError: racer 2 broke"):
        run_in_threads(3, work)
    assert run_in_threads(2, work) == [0, "insufficient_funds"]


def test_parallel_bids_cannot_overspend(buyer, fee_tier):
    instrument = make_instrument()
    # Enough for exactly 3 bids of 10 × 20.00 (+ fees held per lot): 3 × 10 × 20.01.
    ledger.deposit(organisation=buyer.organisation, amount_fen=3 * 10 * 2001)
    actor = actor_from_user(buyer.user)

    def place(i):
        order, _ = order_place(actor=actor, data={"instrument": instrument.code, "side": "buy", "price": "20.00",
                                                  "qty": 10, "client_order_id": f"race-{i}"})
        return order.id

    results = run_in_threads(8, place)
    accepted = [r for r in results if isinstance(r, int)]
    assert len(accepted) == 3
    assert sorted(r for r in results if not isinstance(r, int)) == ["insufficient_funds"] * 5
    balances = ledger.balances(organisation=buyer.organisation)
    assert balances["available"] == 0 and balances["held"] == 3 * 10 * 2001
    assert ledger.ledger_check() == []


def test_two_asks_cannot_sell_the_same_capacity_twice(provider, fee_tier):
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    actor = actor_from_user(provider.user)

    def place(i):
        order, _ = order_place(actor=actor, data={"instrument": instrument.code, "side": "sell", "price": "20.00",
                                                  "qty": 60, "client_order_id": f"ask-{i}"})
        return order.id

    results = run_in_threads(6, place)
    assert len([r for r in results if isinstance(r, int)]) == 1
    assert CapacityPosition.objects.get(organisation=provider.organisation).held == 60


def test_a_repeated_client_order_id_in_parallel_creates_one_order(buyer, fee_tier):
    instrument = make_instrument()
    ledger.deposit(organisation=buyer.organisation, amount_fen=10_000_00)
    actor = actor_from_user(buyer.user)

    def place(i):
        order, _ = order_place(actor=actor, data={"instrument": instrument.code, "side": "buy", "price": "20.00",
                                                  "qty": 1, "client_order_id": "same"})
        return order.id

    results = run_in_threads(6, place)
    assert Order.objects.count() == 1
    # Racers queue on the buyer's account lock, so each later one finds the first order.
    assert results == [Order.objects.get().id] * 6
    assert ledger.balances(organisation=buyer.organisation)["held"] == 2001
    assert ledger.ledger_check() == []


class Crash(Exception):
    pass


@pytest.mark.parametrize("where", ["exchange.engine.write.allocate", "exchange.market_data.build_update",
                                   "exchange.engine.EngineRunner._write_orders"])
def test_a_runner_that_dies_mid_batch_loses_nothing_and_doubles_nothing(buyer, provider, fee_tier, monkeypatch, where):
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    order_place(actor=actor_from_user(provider.user), data={"instrument": instrument.code, "side": "sell", "price": "20.00", "qty": 50})
    order_place(actor=actor_from_user(buyer.user), data={"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 30})

    def crash(*args, **kwargs):
        raise Crash(where)

    first = EngineRunner()
    first.load()
    monkeypatch.setattr(where, crash)
    with pytest.raises(Crash):
        first.step()
    monkeypatch.undo()
    assert not Trade.objects.exists()
    assert InboxCommand.objects.filter(processed_at__isnull=True).count() == 2

    second = EngineRunner()  # a fresh process: books rebuilt from the database
    second.load()
    drain(second)
    assert Trade.objects.count() == 1 and Trade.objects.get().qty == 30
    assert InboxCommand.objects.filter(processed_at__isnull=True).count() == 0
    assert ledger.ledger_check() == []
    third = EngineRunner()
    third.load()
    assert drain(third) == 0
    assert Trade.objects.count() == 1
    assert [int(o["qty"]) for o in third.books[instrument.id].orders()] == [20]


def _asks_then_bids(provider, buyer, instrument, count: int) -> tuple[list[Order], list[Order]]:
    """``count`` asks of 1 SCU·h at 20.00, then ``count`` bids that take them one by one."""
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=count)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    seller, bidder = actor_from_user(provider.user), actor_from_user(buyer.user)
    asks = [order_place(actor=seller, data={"instrument": instrument.code, "side": "sell", "price": "20.00",
                                            "qty": 1, "client_order_id": f"ask-{n}"})[0] for n in range(count)]
    bids = [order_place(actor=bidder, data={"instrument": instrument.code, "side": "buy", "price": "20.00",
                                            "qty": 1, "client_order_id": f"bid-{n}"})[0] for n in range(count)]
    return asks, bids


def _assert_each_bid_took_its_ask(asks, bids):
    from exchange.invariants import invariants_check

    pairs = list(Trade.objects.order_by("inbox_seq", "match_index").values_list("sell_order_id", "buy_order_id"))
    assert pairs == [(ask.id, bid.id) for ask, bid in zip(asks, bids)]
    assert set(Order.objects.values_list("status", flat=True)) == {Order.Status.FILLED}
    assert not InboxCommand.objects.filter(processed_at__isnull=True).exists()
    assert invariants_check() == []


def test_run_engine_killed_twice_mid_stream_loses_nothing_and_doubles_nothing(buyer, provider, fee_tier):
    """The real process, killed with SIGKILL wherever it happens to be (matching, writing,
    committing, publishing), then started again."""
    from tests.processes import start, wait_for_other_sessions_to_end

    pairs = 150
    asks, bids = _asks_then_bids(provider, buyer, make_instrument(), pairs)
    pending = InboxCommand.objects.filter(processed_at__isnull=True)

    def run_until(left: int | None):
        engine = start("manage.py", "run_engine", "--batch-size", "10", ENGINE_BATCH_INTERVAL_MS="30")
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and pending.count() > (left or 0):
                time.sleep(0.005)
        finally:
            engine.kill() if left is not None else engine.terminate()
            engine.wait(timeout=30)
        wait_for_other_sessions_to_end()

    run_until(2 * pairs // 3)  # killed a third of the way through the bids (each a trade) …
    run_until(pairs // 3)  # … and again two thirds of the way through
    assert pending.exists()
    run_until(None)  # then to the end, stopped as usual
    _assert_each_bid_took_its_ask(asks, bids)


def test_a_restart_between_entry_and_matching_rebuilds_the_book(buyer, provider, fee_tier):
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    runner = EngineRunner()
    runner.load()
    order_place(actor=actor_from_user(provider.user), data={"instrument": instrument.code, "side": "sell", "price": "20.00", "qty": 50})
    drain(runner)
    order_place(actor=actor_from_user(buyer.user), data={"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 10})
    del runner  # stopped after the bid was accepted, before the engine saw it
    restarted = EngineRunner()
    restarted.load()
    assert [int(o["qty"]) for o in restarted.books[instrument.id].orders()] == [50]
    drain(restarted)
    assert Trade.objects.get().qty == 10
    assert [int(o["qty"]) for o in restarted.books[instrument.id].orders()] == [40]


def test_two_shards_each_handle_only_their_instruments(buyer, provider, fee_tier):
    instruments = [make_instrument(days_ahead=d) for d in (2, 3, 4, 5)]
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    actor = actor_from_user(buyer.user)
    for instrument in instruments:
        order_place(actor=actor, data={"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1})
    seen: dict[int, set[int]] = {0: set(), 1: set()}

    def run_shard(k):
        runner = EngineRunner(shard=k, shards=2)
        assert runner.acquire_shard(wait=False)
        runner.load()
        original = runner._run

        def spy(commands):
            seen[k].update(c.instrument_id for c in commands)
            return original(commands)

        runner._run = spy
        drain(runner)
        runner.release_shard()
        return k

    assert sorted(run_in_threads(2, run_shard)) == [0, 1]
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == {i.id for i in instruments}
    for k in (0, 1):
        assert all(shard_of(i, 2) == k for i in seen[k])
    assert InboxCommand.objects.filter(processed_at__isnull=True).count() == 0


def test_a_second_runner_for_the_same_shard_waits(db):
    owner = EngineRunner(shard=0, shards=1)
    assert owner.acquire_shard(wait=False)
    result = run_in_threads(1, lambda i: EngineRunner(shard=0, shards=1).acquire_shard(wait=False))
    assert result == [False]
    owner.release_shard()
    result = run_in_threads(1, lambda i: EngineRunner(shard=0, shards=1).acquire_shard(wait=False))
    assert result == [True]  # the thread's connection closed, releasing it again
    # The server process of a closed connection releases its locks as it exits, a moment later.
    deadline = time.monotonic() + 5
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                           "(SELECT oid FROM pg_database WHERE datname = current_database())")
            held = cursor.fetchone()[0]
            if held == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
    assert held == 0


def test_closed_instrument_cancels_resting_orders_and_releases_holds(buyer, fee_tier):
    from django.utils import timezone

    from exchange.instruments import housekeeping

    instrument = make_instrument()
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    runner = EngineRunner()
    runner.load()
    order, _ = order_place(actor=actor_from_user(buyer.user), data={"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 5})
    drain(runner)
    Instrument.objects.filter(pk=instrument.pk).update(gate_closure_at=timezone.now())
    housekeeping(runner=runner)
    drain(runner)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.CLOSED
    assert ledger.balances(organisation=buyer.organisation)["held"] == 0


def _place_on(conn, actor, data) -> tuple[str, int | None]:
    """cx_place_orders for one order on a raw psycopg connection; (code, order id)."""
    from exchange.gateway import PLACE_SQL, order_request_parse, place_params

    request = order_request_parse(data, actor=actor)
    ((_, order_id, code, *_),) = conn.execute(PLACE_SQL, place_params([request])).fetchall()
    return code, order_id


def _while_first_is_open(first_data, second_data, actor):
    """Place ``first_data`` in an open transaction, start ``second_data`` on another connection,
    let it reach the rows the first holds, commit the first; the second's (code, id)."""
    import time

    import psycopg

    from exchange.db import conninfo

    result = {}
    with psycopg.connect(conninfo()) as first, psycopg.connect(conninfo(), autocommit=True) as second:
        first_code, first_id = _place_on(first, actor, first_data)
        assert first_code == "accepted"
        worker = threading.Thread(target=lambda: result.update(out=_place_on(second, actor, second_data)))
        worker.start()
        with psycopg.connect(conninfo(), autocommit=True) as watcher:
            for _ in range(200):  # until the second waits on a row or key the first holds
                waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND datname = current_database()").fetchone()[0]
                if waiting:
                    break
                time.sleep(0.01)
        assert waiting, "the second placement never waited for the first"
        first.commit()
        worker.join(10)
    return first_id, result["out"]


def test_a_bid_decided_on_a_balance_that_moved_is_decided_again_on_the_locked_row(buyer, fee_tier):
    instrument = make_instrument()
    ledger.deposit(organisation=buyer.organisation, amount_fen=10 * 2001)  # one bid of 10 × 20.00 + fees
    actor = actor_from_user(buyer.user)
    bid = {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 10}
    _, (code, order_id) = _while_first_is_open({**bid, "client_order_id": "a"}, {**bid, "client_order_id": "b"}, actor)
    assert (code, order_id) == ("insufficient_funds", None)
    assert Order.objects.count() == 1
    balances = ledger.balances(organisation=buyer.organisation)
    assert (balances["available"], balances["held"]) == (0, 10 * 2001)
    assert ledger.ledger_check() == []


def test_an_ask_decided_on_capacity_that_moved_is_decided_again_on_the_locked_row(provider, fee_tier):
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    actor = actor_from_user(provider.user)
    ask = {"instrument": instrument.code, "side": "sell", "price": "20.00", "qty": 60}
    _, (code, order_id) = _while_first_is_open({**ask, "client_order_id": "a"}, {**ask, "client_order_id": "b"}, actor)
    assert (code, order_id) == ("insufficient_capacity", None)
    assert CapacityPosition.objects.get(organisation=provider.organisation).held == 60


def test_the_same_client_order_id_from_two_open_batches_is_one_order(buyer, fee_tier):
    instrument = make_instrument()
    ledger.deposit(organisation=buyer.organisation, amount_fen=100 * 2001)
    actor = actor_from_user(buyer.user)
    bid = {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 10, "client_order_id": "same"}
    first_id, (code, order_id) = _while_first_is_open(bid, bid, actor)
    assert (code, order_id) == ("duplicate", first_id)
    assert Order.objects.count() == 1
    assert ledger.balances(organisation=buyer.organisation)["held"] == 10 * 2001
    assert ledger.ledger_check() == []


def test_the_runner_starts_batches_at_least_the_interval_apart(buyer, fee_tier, settings, monkeypatch):
    settings.ENGINE_BATCH_INTERVAL_MS = 50
    instrument = make_instrument()
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    runner = EngineRunner(batch_size=1)
    runner.load()
    bidder = actor_from_user(buyer.user)
    orders = [order_place(actor=bidder, data={"instrument": instrument.code, "side": "buy", "price": "19.00",
                                              "qty": 1, "client_order_id": f"paced-{n}"})[0] for n in range(3)]
    starts, read = [], runner._pending
    monkeypatch.setattr(runner, "_pending", lambda *args, **kwargs: (starts.append(time.monotonic()),
                                                                      read(*args, **kwargs))[1])
    runner.run(stop=lambda: not InboxCommand.objects.filter(processed_at__isnull=True).exists(), poll_seconds=0.01)
    assert [Order.objects.get(pk=o.pk).status for o in orders] == [Order.Status.OPEN] * 3
    assert len(starts) >= 3
    assert min(later - earlier for earlier, later in zip(starts, starts[1:])) >= 0.05


def test_a_command_that_fails_every_time_is_set_aside_and_the_shard_goes_on(buyer, provider, fee_tier, settings):
    from marketplace.models import ListingPeriod

    settings.ENGINE_BATCH_INTERVAL_MS = 0
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    runner = EngineRunner()
    runner.load()
    seller, bidder = actor_from_user(provider.user), actor_from_user(buyer.user)
    ask, _ = order_place(actor=seller, data={"instrument": instrument.code, "side": "sell", "price": "20.00", "qty": 50})
    drain(runner)
    # A broken invariant: the ask's capacity vanishes behind the exchange's back, so a trade
    # against it can never be allocated.
    ListingPeriod.objects.filter(provider=provider.organisation).update(scu_h=0)
    poisoned, _ = order_place(actor=bidder, data={"instrument": instrument.code, "side": "buy", "price": "20.00",
                                                  "qty": 10, "client_order_id": "poisoned"})
    later, _ = order_place(actor=bidder, data={"instrument": instrument.code, "side": "buy", "price": "19.00",
                                               "qty": 5, "client_order_id": "later"})
    runner.run(stop=lambda: not InboxCommand.objects.filter(processed_at__isnull=True).exists(), poll_seconds=0.01)

    poisoned.refresh_from_db()
    later.refresh_from_db()
    assert (poisoned.status, poisoned.reason, poisoned.held_fen) == (Order.Status.REJECTED, "engine_error", 0)
    assert later.status == Order.Status.OPEN
    assert not Trade.objects.exists()
    assert ledger.balances(organisation=buyer.organisation)["held"] == later.held_fen
    assert ledger.ledger_check() == []


def _run_one_round(runner, monkeypatch, drain) -> None:
    """``run`` for one wake-up with ``drain`` in place of the runner's; setting a command aside
    fails the test."""
    monkeypatch.setattr(runner, "drain", drain)
    monkeypatch.setattr(runner, "quarantine_failing_command", lambda: pytest.fail("nothing should be set aside"))
    monkeypatch.setattr("exchange.instruments.housekeeping", lambda runner: None)
    stops = iter([False, True])
    runner.run(stop=lambda: next(stops), poll_seconds=0.01)


def test_the_failing_command_is_found_by_halving_batches_and_the_others_go_through(buyer, provider, fee_tier):
    from exchange.allocation import CapacityShortfall
    from marketplace.models import ListingPeriod

    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    runner = EngineRunner(batch_size=64)
    runner.load()
    seller, bidder = actor_from_user(provider.user), actor_from_user(buyer.user)
    order_place(actor=seller, data={"instrument": instrument.code, "side": "sell", "price": "20.00", "qty": 50})
    drain(runner)
    ListingPeriod.objects.filter(provider=provider.organisation).update(scu_h=0)  # a trade can no longer be allocated

    def bid(name, price):
        return order_place(actor=bidder, data={"instrument": instrument.code, "side": "buy", "price": price,
                                               "qty": 1, "client_order_id": name})[0]

    before = [bid(f"before-{n}", "19.00") for n in range(25)]
    poisoned = bid("poisoned", "20.00")
    after = [bid(f"after-{n}", "19.00") for n in range(10)]
    with pytest.raises(CapacityShortfall):
        runner.step()
    steps, step = [], runner.step
    runner.step = lambda: (steps.append(runner.batch_size), step())[1]
    set_aside = runner.quarantine_failing_command()

    assert set_aside.order_id == poisoned.id
    poisoned.refresh_from_db()
    assert (poisoned.status, poisoned.reason) == (Order.Status.REJECTED, "engine_error")
    assert len(steps) <= 2 * 6 + 1 and steps[0] == 32 and 1 in steps  # not one step per command
    assert runner.batch_size == 64
    drain(runner)
    assert {Order.objects.get(pk=o.pk).status for o in before + after} == {Order.Status.OPEN}
    assert ledger.ledger_check() == []


def test_a_batch_that_fails_fewer_times_than_the_limit_is_retried_and_nothing_is_set_aside(db, settings, monkeypatch):
    from exchange import engine

    settings.ENGINE_BATCH_INTERVAL_MS = 0
    runner = EngineRunner()
    outcomes = [RuntimeError("passing trouble")] * (engine.QUARANTINE_AFTER - 1) + [4]

    def drain(**_):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    _run_one_round(runner, monkeypatch, drain)
    assert outcomes == []


def test_a_lost_database_connection_stops_the_runner_instead_of_setting_commands_aside(db, settings, monkeypatch):
    from django.db import OperationalError

    settings.ENGINE_BATCH_INTERVAL_MS = 0
    runner = EngineRunner()

    def drain(**_):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(runner, "drain", drain)
    monkeypatch.setattr(runner, "quarantine_failing_command", lambda: pytest.fail("nothing should be set aside"))
    with pytest.raises(OperationalError):
        runner.run(stop=lambda: False, poll_seconds=0.01)


def test_a_real_deadlock_counts_as_transient_and_a_lost_connection_does_not(buyer, provider, fee_tier):
    from django.db import DatabaseError, OperationalError, transaction

    from exchange.engine import connection_lost, transient
    from exchange.models import LedgerAccount

    ledger.deposit(organisation=buyer.organisation, amount_fen=100)
    ledger.deposit(organisation=provider.organisation, amount_fen=100)
    first, second = (LedgerAccount.objects.get(organisation=o, kind="available").pk
                     for o in (buyer.organisation, provider.organisation))
    barrier, errors = threading.Barrier(2), []

    def lock_both(order):
        try:
            with transaction.atomic():
                for n, pk in enumerate(order):
                    list(LedgerAccount.objects.select_for_update().filter(pk=pk))
                    if n == 0:
                        barrier.wait()
        except DatabaseError as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=lock_both, args=(order,)) for order in ((first, second), (second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (deadlock,) = errors  # PostgreSQL broke the cycle by refusing one of the two
    assert isinstance(deadlock, OperationalError) and transient(deadlock) and not connection_lost(deadlock)
    assert connection_lost(OperationalError("server closed the connection unexpectedly"))


def test_the_runner_tries_a_transiently_refused_batch_again_and_sets_nothing_aside(db, settings, monkeypatch):
    import psycopg
    from django.db import OperationalError

    from exchange import engine

    settings.ENGINE_BATCH_INTERVAL_MS = 0
    runner = EngineRunner()
    outcomes = ["deadlock"] * (engine.QUARANTINE_AFTER + 2) + [0]

    def drain(**_):
        if outcomes.pop(0) == "deadlock":
            raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected("deadlock detected")
        return 0

    _run_one_round(runner, monkeypatch, drain)
    assert outcomes == []


def test_a_publishing_failure_after_commit_sets_nothing_aside(buyer, fee_tier, settings, monkeypatch):
    settings.ENGINE_BATCH_INTERVAL_MS = 0
    instrument = make_instrument()
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    runner = EngineRunner(batch_size=1)  # one order a batch: more batches than QUARANTINE_AFTER
    runner.load()

    def redis_away(writes):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(runner, "_publish", redis_away)
    bidder = actor_from_user(buyer.user)
    orders = [order_place(actor=bidder, data={"instrument": instrument.code, "side": "buy", "price": "19.00",
                                              "qty": 1, "client_order_id": f"quiet-{n}"})[0] for n in range(4)]
    runner.run(stop=lambda: not InboxCommand.objects.filter(processed_at__isnull=True).exists(), poll_seconds=0.01)
    assert [Order.objects.get(pk=o.pk).status for o in orders] == [Order.Status.OPEN] * 4


def test_drain_writes_each_batch_while_it_matches_the_next_with_the_same_outcome(buyer, provider, fee_tier):
    instrument = make_instrument()
    asks, bids = _asks_then_bids(provider, buyer, instrument, 12)
    runner = EngineRunner(batch_size=5)  # bids of a batch meet asks committed by earlier ones
    runner.load()
    written = []
    write = runner._write
    runner._write = lambda writes: (written.append(threading.current_thread().name), write(writes))[1]
    try:
        assert runner.drain() == 24
    finally:
        runner.close()
    assert len(written) == 5 and all(name.startswith("engine-writer") for name in written)
    _assert_each_bid_took_its_ask(asks, bids)
    assert runner.drain() == 0


def test_a_batch_that_fails_in_the_writer_takes_nothing_prepared_after_it_with_it(buyer, provider, fee_tier):
    instrument = make_instrument()
    asks, bids = _asks_then_bids(provider, buyer, instrument, 6)
    runner = EngineRunner(batch_size=3)
    runner.load()
    calls, write = [], runner._write

    def write_failing_second(writes):
        calls.append(len(writes.trades))
        if len(calls) == 2:
            raise RuntimeError("disk trouble")
        write(writes)

    runner._write = write_failing_second
    try:
        with pytest.raises(RuntimeError, match="disk trouble"):
            runner.drain()
        # The first batch (three asks) committed; the second (three more asks) rolled back, and
        # the third (three bids, matched into trades against the books it had left) was never
        # written.
        assert InboxCommand.objects.filter(processed_at__isnull=True).count() == 9
        assert not Trade.objects.exists()
        runner._write = write
        assert runner.drain() == 9
    finally:
        runner.close()
    _assert_each_bid_took_its_ask(asks, bids)


def test_a_batch_that_fails_to_match_lets_the_one_in_flight_commit_first(buyer, provider, fee_tier):
    instrument = make_instrument()
    asks, bids = _asks_then_bids(provider, buyer, instrument, 4)
    runner = EngineRunner(batch_size=4)
    runner.load()
    prepare, calls = runner._prepare, []

    def prepare_failing_second(commands):
        calls.append(len(commands))
        if len(calls) == 2:
            raise RuntimeError("bad command")
        return prepare(commands)

    runner._prepare = prepare_failing_second
    try:
        with pytest.raises(RuntimeError, match="bad command"):
            runner.drain()
        assert InboxCommand.objects.filter(processed_at__isnull=True).count() == 4  # the asks went in
        runner._prepare = prepare
        assert runner.drain() == 4
    finally:
        runner.close()
    _assert_each_bid_took_its_ask(asks, bids)


def test_a_batch_already_processed_by_another_writer_is_refused(buyer, fee_tier):
    from django.db import transaction

    from exchange.engine import InboxConflict

    instrument = make_instrument()
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    order_place(actor=actor_from_user(buyer.user), data={"instrument": instrument.code, "side": "buy",
                                                         "price": "19.00", "qty": 1})
    first, second = EngineRunner(), EngineRunner()
    first.load()
    second.load()
    commands = second._pending()
    writes = second._prepare(commands)
    assert first.step() == 1
    with pytest.raises(InboxConflict, match="1 of the batch's 1 inbox commands"):
        with transaction.atomic():
            second._write_batch(commands, writes)
    order = Order.objects.get()  # accepted once, its hold taken once
    assert order.status == Order.Status.OPEN and order.held_fen > 0
    assert ledger.balances(organisation=buyer.organisation)["held"] == order.held_fen
    assert ledger.ledger_check() == []


@pytest.mark.parametrize("args, settings_size, message", [
    (["--shard", "2/2"], 20000, "--shard must be K/N"),
    (["--shard", "one/two"], 20000, "--shard must be K/N"),
    (["--batch-size", "0"], 20000, r"batch size must be at least 1 \(got 0"),
    ([], -5, r"batch size must be at least 1 \(got -5; see ENGINE_BATCH_SIZE"),
])
def test_run_engine_refuses_a_bad_shard_or_batch_size_and_starts_nothing(db, settings, args, settings_size, message):
    from django.core.management import CommandError, call_command

    settings.ENGINE_BATCH_SIZE = settings_size
    with pytest.raises(CommandError, match=message):
        call_command("run_engine", *args)
    with connection.cursor() as cursor:  # no shard lock taken (in this database: others may share the server)
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                       "(SELECT oid FROM pg_database WHERE datname = current_database())")
        assert cursor.fetchone()[0] == 0
