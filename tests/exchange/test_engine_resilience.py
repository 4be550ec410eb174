"""An order's content cannot stop the engine: what it reads cannot fail, and setting a command
aside needs only ids and integers."""

import pytest
from django.db import connection

from accounts.access import actor_from_user
from exchange import ledger
from exchange.engine import EngineRunner
from exchange.models import CapacityPosition, InboxCommand, Order, Trade
from exchange.services import order_amend, order_place

# Past year 9999 in UTC: PostgreSQL stores it, Python's datetime cannot hold it.
BEYOND_9999 = "9999-12-31T23:59:59-14:00"

# drain() writes on its own thread and connection, which must see the test's rows.
pytestmark = pytest.mark.django_db(transaction=True)


def _store(order_id: int, **columns) -> None:
    """Give a placed order the content a faulty validation would have let through."""
    assignments = ", ".join(f"{name} = %s" for name in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE exchange_order SET {assignments} WHERE id = %s", [*columns.values(), order_id])


def _pending() -> int:
    return InboxCommand.objects.filter(processed_at__isnull=True).count()


def _crossing_pair(provider, buyer, instrument, *, qty=5):
    ask, _ = order_place(actor=actor_from_user(provider.user),
                         data={"instrument": instrument.code, "side": "sell", "price": "20.00", "qty": qty})
    bid, _ = order_place(actor=actor_from_user(buyer.user),
                         data={"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": qty})
    return ask, bid


def _extreme_gtd_bid(buyer, instrument, *, price="19.00"):
    order, _ = order_place(actor=actor_from_user(buyer.user), data={
        "instrument": instrument.code, "side": "buy", "price": price, "qty": 1, "tif": "GTD",
        "expires_at": instrument.gate_closure_at.isoformat(), "client_order_id": "far-future"})
    _store(order.id, expires_at=BEYOND_9999)
    return order


@pytest.fixture
def traders(funded_buyer, listed_provider, instrument):
    return funded_buyer, listed_provider, instrument


def _run_counting_set_asides(runner) -> list:
    """Run until the inbox is empty (or a command was set aside more than three times); one
    entry per command set aside."""
    attempts = []
    set_aside = runner.quarantine_failing_command
    runner.quarantine_failing_command = lambda: (attempts.append(1), set_aside())[1]
    runner.run(stop=lambda: _pending() == 0 or len(attempts) > 3, poll_seconds=0.01)
    return attempts


@pytest.mark.parametrize("stage", ["step", "drain"])
def test_an_expiry_past_year_9999_does_not_stop_the_engine(traders, stage):
    buyer, provider, instrument = traders
    runner = EngineRunner()
    runner.load()
    far = _extreme_gtd_bid(buyer, instrument)
    ask, bid = _crossing_pair(provider, buyer, instrument)

    if stage == "step":
        while runner.step():
            pass
    else:
        runner.drain()
        runner.close()

    assert _pending() == 0
    assert Trade.objects.filter(buy_order=bid, sell_order=ask, qty=5).exists()
    # (Only what Python can read: the order's expiry is past what a datetime holds.)
    assert Order.objects.filter(pk=far.pk).values_list("status", flat=True).get() == Order.Status.OPEN  # it rests
    assert ledger.ledger_check() == []
    # A restart reads the resting order's expiry from the store as well.
    restarted = EngineRunner()
    restarted.load()
    assert far.id in restarted.books[instrument.id].orders()["order_id"].tolist()


def test_a_command_that_fails_on_its_content_is_set_aside_once_and_the_shard_goes_on(traders, settings):
    buyer, provider, instrument = traders
    settings.ENGINE_BATCH_INTERVAL_MS = 0
    runner = EngineRunner()
    runner.load()
    broken = _extreme_gtd_bid(buyer, instrument)
    _store(broken.id, tif="XYZ")  # no time in force the engine knows
    ask, bid = _crossing_pair(provider, buyer, instrument)
    held_before = broken.held_fen
    assert held_before > 0
    attempts = _run_counting_set_asides(runner)

    assert _pending() == 0
    assert len(attempts) == 1
    assert Order.objects.filter(pk=broken.pk).values_list("status", "reason", "held_fen").get() == (
        Order.Status.REJECTED, "engine_error", 0)
    assert Trade.objects.filter(buy_order=bid, sell_order=ask, qty=5).exists()
    assert ledger.balances(organisation=buyer.organisation)["held"] == 0
    assert ledger.ledger_check() == []


def test_a_set_aside_that_cannot_be_written_still_marks_the_command_processed(traders, settings):
    """An ask whose remaining exceeds the capacity it holds: giving that capacity back would
    make the position negative, which the database refuses, so even the rejection fails."""
    buyer, provider, instrument = traders
    settings.ENGINE_BATCH_INTERVAL_MS = 0
    runner = EngineRunner()
    runner.load()
    broken, _ = order_place(actor=actor_from_user(provider.user),
                            data={"instrument": instrument.code, "side": "sell", "price": "25.00", "qty": 1})
    _store(broken.id, remaining=10**15)
    ask, bid = _crossing_pair(provider, buyer, instrument)
    attempts = _run_counting_set_asides(runner)

    assert _pending() == 0
    assert len(attempts) == 1
    assert Trade.objects.filter(buy_order=bid, sell_order=ask, qty=5).exists()
    assert Order.objects.get(pk=broken.pk).status == Order.Status.ACCEPTED  # left for an operator, logged
    assert CapacityPosition.objects.get(organisation=provider.organisation, instrument=instrument).held >= 0


def test_a_command_that_gives_the_book_nothing_does_not_shift_the_ones_after_it(traders):
    """An uncross of a book that is not in an auction (say, one queued twice) is a no-op for
    the book; the commands after it in the batch must still be matched with their own rows."""
    buyer, provider, instrument = traders
    runner = EngineRunner()
    runner.load()
    bidder = actor_from_user(buyer.user)
    resting, _ = order_place(actor=bidder, data={"instrument": instrument.code, "side": "buy", "price": "19.00",
                                                 "qty": 5})
    runner.step()
    InboxCommand.objects.create(instrument=instrument, action=InboxCommand.Action.UNCROSS)
    order_amend(actor=bidder, order_id=resting.id, data={"qty": 2})
    ask, bid = _crossing_pair(provider, buyer, instrument)

    assert runner.step() == 4
    assert Order.objects.filter(pk=resting.pk).values_list("remaining", flat=True).get() == 2
    trade = Trade.objects.get()
    assert trade.inbox_seq == InboxCommand.objects.get(order=bid, action="new").seq
    assert ledger.ledger_check() == []
