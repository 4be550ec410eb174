"""Trading semantics through ``drain()``, the two-stage path ``run_engine`` takes, with commands that
arrive while the batch before them is being written: the next batch is read and matched against the
books that batch left, before it has committed (the store still shows the state before it)."""

import threading

import pytest
from django.db import connections

from accounts.access import actor_from_user
from exchange import ledger
from exchange.engine import EngineRunner
from exchange.errors import AppError
from exchange.instruments import instrument_open
from exchange.invariants import invariants_check
from exchange.models import Allocation, InboxCommand, Instrument, LedgerAccount, Order, Trade
from exchange.services import hold_per_lot, order_amend, order_cancel, order_place
from marketplace.models import ListingPeriod
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


def drain_with_arrivals(runner: EngineRunner, arrive) -> int:
    """``runner.drain()``, in which ``arrive()`` enters its commands (each committed) while the first
    batch is in flight: after it went to the writer thread, before the writer writes it, and before
    the next batch is read. The writer waits for them, so the interleaving is the same every time."""
    arrived = threading.Event()
    write, pending = runner._write, runner._pending
    failures: list[BaseException] = []

    def write_after_arrivals(writes):
        if not arrived.wait(30):
            raise RuntimeError("the arrivals never came")
        write(writes)

    def pending_after_arrivals(exclude=()):
        if exclude and not arrived.is_set():  # the first batch is in flight
            try:
                arrive()
            except BaseException as exc:
                failures.append(exc)
            finally:
                arrived.set()
        return pending(exclude=exclude)

    runner._write, runner._pending = write_after_arrivals, pending_after_arrivals
    try:
        total = runner.drain()
    finally:
        runner._write, runner._pending = write, pending
        runner.close()
    if failures:
        raise failures[0]
    assert arrived.is_set(), "the first batch was not followed by another"
    return total


@pytest.fixture
def market(funded_buyer, listed_provider, instrument):
    buyer, provider = funded_buyer, listed_provider
    runner = EngineRunner()
    runner.load()
    yield instrument, runner, actor_from_user(buyer.user), actor_from_user(provider.user)
    runner.close()  # the writer thread and its connection
    connections.close_all()


def place(actor, instrument, side, price, qty, **extra) -> Order:
    return order_place(actor=actor, data={"instrument": instrument.code, "side": side, "price": price, "qty": qty,
                                          **extra})[0]


def book_orders(runner, instrument) -> list[tuple[int, int, int]]:
    """(order id, price in ticks, qty) resting in the runner's book, in priority order."""
    return [(int(o["order_id"]), int(o["price"]), int(o["qty"])) for o in runner.books[instrument.id].orders()]


def held(organisation_id) -> int:
    return LedgerAccount.objects.get(organisation_id=organisation_id, kind=LedgerAccount.Kind.HELD).balance


def assert_settled():
    assert not InboxCommand.objects.filter(processed_at__isnull=True).exists()
    assert invariants_check() == []


def test_amend_and_cancel_of_orders_whose_arrival_is_still_being_written(market, buyer):
    instrument, runner, bidder, _ = market
    first = place(bidder, instrument, "buy", "19.00", 10)
    second = place(bidder, instrument, "buy", "19.00", 5)

    def arrive():  # the store still says both are merely accepted
        order_amend(actor=bidder, order_id=first.id, data={"price": "19.50", "qty": 8})
        order_cancel(actor=bidder, order_id=second.id)

    assert drain_with_arrivals(runner, arrive) == 4
    first.refresh_from_db()
    second.refresh_from_db()
    per_lot = hold_per_lot(price_fen=1950, organisation_id=buyer.organisation_id)
    assert (first.status, first.price_fen, first.remaining, first.hold_per_lot_fen, first.held_fen) == (
        Order.Status.OPEN, 1950, 8, per_lot, per_lot * 8)
    assert (second.status, second.held_fen) == (Order.Status.CANCELLED, 0)
    assert held(buyer.organisation_id) == per_lot * 8
    assert book_orders(runner, instrument) == [(first.id, 1950, 8)]
    assert_settled()


def test_amend_of_a_bid_that_the_batch_in_flight_fills_in_part(market, buyer):
    instrument, runner, bidder, seller = market
    bid = place(bidder, instrument, "buy", "19.00", 10)
    runner.drain()
    place(seller, instrument, "sell", "19.00", 6)

    def arrive():
        # Entry sees 10 remaining and holds the higher price for all 10; the engine, which knows
        # that only 4 are left, must give back the hold of the other 6.
        order_amend(actor=bidder, order_id=bid.id, data={"price": "19.20"})

    drain_with_arrivals(runner, arrive)
    bid.refresh_from_db()
    per_lot = hold_per_lot(price_fen=1920, organisation_id=buyer.organisation_id)
    assert (bid.status, bid.price_fen, bid.remaining, bid.filled, bid.held_fen) == (
        Order.Status.PARTIALLY_FILLED, 1920, 4, 6, per_lot * 4)
    assert Trade.objects.get().qty == 6
    assert held(buyer.organisation_id) == per_lot * 4
    assert book_orders(runner, instrument) == [(bid.id, 1920, 4)]
    assert_settled()


def test_cancel_of_a_bid_that_the_batch_in_flight_fills_changes_nothing(market, buyer):
    instrument, runner, bidder, seller = market
    bid = place(bidder, instrument, "buy", "19.00", 10)
    runner.drain()
    place(seller, instrument, "sell", "19.00", 10)

    drain_with_arrivals(runner, lambda: order_cancel(actor=bidder, order_id=bid.id))  # still open in the store
    bid.refresh_from_db()
    assert (bid.status, bid.filled, bid.held_fen) == (Order.Status.FILLED, 10, 0)
    assert Trade.objects.get().qty == 10
    assert held(buyer.organisation_id) == 0
    assert book_orders(runner, instrument) == []
    assert_settled()


def test_an_auction_uncrossed_by_the_batch_after_the_one_that_collected_its_orders(buyer, provider, fee_tier):
    instrument = make_instrument(state=Instrument.State.PRE_OPEN, reference_fen=None, days_ahead=3)
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    runner = EngineRunner()
    runner.load()
    bidder, seller = actor_from_user(buyer.user), actor_from_user(provider.user)
    place(seller, instrument, "sell", "19.00", 30)
    place(seller, instrument, "sell", "20.00", 30)
    place(bidder, instrument, "buy", "21.00", 40)
    place(bidder, instrument, "buy", "20.00", 10)
    late = {}

    def arrive():
        instrument_open(instrument=instrument)
        # Entered while the store still shows the opening auction; the engine sees it after the
        # uncross, in continuous trading, and it takes the rest of the 20.00 ask at once.
        late["bid"] = place(bidder, instrument, "buy", "20.00", 5)

    assert drain_with_arrivals(runner, arrive) == 6
    auction = list(Trade.objects.filter(aggressor="auction").values_list("price_fen", "qty"))
    assert {price for price, _ in auction} == {2000} and sum(qty for _, qty in auction) == 50
    after = Trade.objects.exclude(aggressor="auction").get()
    assert (after.aggressor, after.price_fen, after.qty, after.buy_order_id) == ("buy", 2000, 5, late["bid"].id)
    instrument.refresh_from_db()
    assert (instrument.state, instrument.reference_price_fen, instrument.auction_ends_at) == (
        Instrument.State.CONTINUOUS, 2000, None)
    assert [qty for _, _, qty in book_orders(runner, instrument)] == [5]  # 60 offered, 55 bought
    assert_settled()


def test_a_resale_across_batches_in_flight(market, buyer):
    instrument, runner, reseller, provider = market
    third = MembershipFactory(organisation__kind="buyer")
    ledger.deposit(organisation=third.organisation, amount_fen=1_000_000_00)
    place(provider, instrument, "sell", "20.00", 10)
    place(reseller, instrument, "buy", "20.00", 10)
    refused = {}

    def resell_too_early():
        # The purchase is matched but not yet committed: nothing bought to sell yet.
        with pytest.raises(AppError) as err:
            place(reseller, instrument, "sell", "20.40", 6)
        refused["code"] = err.value.code

    drain_with_arrivals(runner, resell_too_early)
    assert refused["code"] == "insufficient_capacity"
    assert Trade.objects.get().buyer_id == buyer.organisation_id

    resale = place(reseller, instrument, "sell", "20.40", 6)
    drain_with_arrivals(runner, lambda: place(actor_from_user(third.user), instrument, "buy", "20.40", 6))
    resale.refresh_from_db()
    assert resale.status == Order.Status.FILLED
    allocation = Allocation.objects.get(holder=third.organisation)
    assert allocation.scu_h == 6 and allocation.source.holder_id == buyer.organisation_id
    assert allocation.source.resold_scu_h == 6
    assert ListingPeriod.objects.get().sold_scu_h == 10  # the listing sold once, not twice
    assert_settled()


def test_an_amend_that_is_no_cut_any_more_once_the_batch_in_flight_filled_the_bid(market, buyer):
    instrument, runner, bidder, seller = market
    bid = place(bidder, instrument, "buy", "19.00", 10)
    runner.drain()
    place(seller, instrument, "sell", "19.00", 6)
    # Entry sees 10 remaining, so 8 is a cut; by the time the engine applies it only 4 are left,
    # and 4 stay (matching alone would take 8 as the new remaining: more than the hold covers).
    drain_with_arrivals(runner, lambda: order_amend(actor=bidder, order_id=bid.id, data={"qty": 8, "price": "19.10"}))
    bid.refresh_from_db()
    assert bid.filled + bid.remaining <= bid.qty
    per_lot = hold_per_lot(price_fen=1910, organisation_id=buyer.organisation_id)
    assert (bid.price_fen, bid.remaining, bid.held_fen) == (1910, 4, per_lot * 4)
    assert_settled()


def test_an_amend_of_a_bid_the_batch_in_flight_fills_gives_its_extra_hold_back(market, buyer):
    instrument, runner, bidder, seller = market
    bid = place(bidder, instrument, "buy", "19.00", 10)
    runner.drain()
    place(seller, instrument, "sell", "19.00", 10)
    before = ledger.balances(organisation=buyer.organisation)["available"]
    extra = {}

    def arrive():  # the store still shows the bid open: a higher price holds more at once
        order_amend(actor=bidder, order_id=bid.id, data={"price": "19.50"})
        extra["fen"] = before - ledger.balances(organisation=buyer.organisation)["available"]

    drain_with_arrivals(runner, arrive)
    assert extra["fen"] > 0
    bid.refresh_from_db()
    assert (bid.status, bid.price_fen, bid.held_fen) == (Order.Status.FILLED, 1900, 0)
    assert held(buyer.organisation_id) == 0
    trade = Trade.objects.get()
    assert ledger.balances(organisation=buyer.organisation)["available"] == 1_000_000_00 - 19000 - trade.buyer_fee_fen
    assert_settled()
