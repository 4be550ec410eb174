"""Order rules through the whole exchange (order entry, the engine, the store), not only inside matching/:
self-trade prevention by beneficial owner, GTD expiry as the book received it, market orders without a
reference price."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from exchange import ledger
from exchange.instruments import housekeeping
from exchange.invariants import invariants_check
from exchange.models import CapacityPosition, InboxCommand, Order, Trade
from tests.conftest import token_client
from tests.exchange.conftest import drain, list_capacity, make_instrument
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def order(instrument, side, price, qty, **extra):
    return {"instrument": instrument.code, "side": side, "price": price, "qty": qty, **extra}


def test_orders_of_one_beneficial_owner_never_trade_with_each_other(instrument, funded_buyer, fee_tier, runner):
    """Two organisations of one owner: the later order (the taker) is cancelled with reason ``stp``, the
    resting one stays and still trades with anyone else."""
    sibling = MembershipFactory(organisation__kind="provider",
                                organisation__beneficial_owner=funded_buyer.organisation.beneficial_owner)
    assert sibling.organisation_id != funded_buyer.organisation_id
    list_capacity(organisation=sibling.organisation, instrument=instrument, scu_h=100)
    seller, buyer = token_client(sibling), token_client(funded_buyer)
    ask = seller.post("/api/v1/orders/", order(instrument, "sell", "20.00", 10), format="json")
    assert ask.status_code == 201
    drain(runner)
    bid = buyer.post("/api/v1/orders/", order(instrument, "buy", "20.50", 4), format="json")
    assert bid.status_code == 201
    drain(runner)

    assert not Trade.objects.exists()
    taker, maker = Order.objects.get(pk=bid.data["id"]), Order.objects.get(pk=ask.data["id"])
    assert (taker.status, taker.reason, taker.filled, taker.held_fen) == (Order.Status.CANCELLED, "stp", 0, 0)
    assert (maker.status, maker.remaining) == (Order.Status.OPEN, 10)
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 0
    assert [int(o["order_id"]) for o in runner.books[instrument.id].orders()] == [maker.id]
    assert buyer.get(f"/api/v1/orders/{taker.id}/").data["reason"] == "stp"

    # An organisation of another owner takes the same ask as usual.
    stranger = MembershipFactory(organisation__kind="buyer")
    ledger.deposit(organisation=stranger.organisation, amount_fen=1_000_000_00)
    assert token_client(stranger).post("/api/v1/orders/", order(instrument, "buy", "20.00", 4),
                                       format="json").status_code == 201
    drain(runner)
    trade = Trade.objects.get()
    assert (trade.buyer_id, trade.seller_id, trade.qty) == (stranger.organisation_id, sibling.organisation_id, 4)
    assert CapacityPosition.objects.get(organisation=sibling.organisation).held == 6
    assert invariants_check() == []


def test_a_resting_bid_is_not_taken_by_an_ask_of_its_own_owner(instrument, funded_buyer, fee_tier, runner):
    sibling = MembershipFactory(organisation__kind="provider",
                                organisation__beneficial_owner=funded_buyer.organisation.beneficial_owner)
    list_capacity(organisation=sibling.organisation, instrument=instrument, scu_h=100)
    bid = token_client(funded_buyer).post("/api/v1/orders/", order(instrument, "buy", "20.00", 5), format="json")
    drain(runner)
    ask = token_client(sibling).post("/api/v1/orders/", order(instrument, "sell", "19.80", 5), format="json")
    drain(runner)
    assert not Trade.objects.exists()
    taker = Order.objects.get(pk=ask.data["id"])
    assert (taker.status, taker.reason) == (Order.Status.CANCELLED, "stp")
    assert Order.objects.get(pk=bid.data["id"]).status == Order.Status.OPEN
    # The ask's capacity is free again.
    assert CapacityPosition.objects.get(organisation=sibling.organisation).held == 0
    assert invariants_check() == []


def test_a_gtd_order_rests_until_the_expiry_it_arrived_with_and_then_expires(instrument, funded_buyer, runner):
    """No rewriting of the row: the expiry travels from the request through the inbox into the book."""
    client = token_client(funded_buyer)
    soon = timezone.now() + timedelta(seconds=3)  # room for entry and the first batch on a busy machine
    short = client.post("/api/v1/orders/", order(instrument, "buy", "19.00", 2, tif="GTD", expires_at=soon.isoformat()),
                        format="json")
    later = client.post("/api/v1/orders/", order(instrument, "buy", "19.00", 3, tif="GTD",
                                                 expires_at=(timezone.now() + timedelta(hours=1)).isoformat()),
                        format="json")
    assert short.status_code == 201 and later.status_code == 201
    drain(runner)
    assert Order.objects.get(pk=short.data["id"]).status == Order.Status.OPEN
    housekeeping(runner=runner)  # not due yet: nothing to expire
    assert not InboxCommand.objects.filter(action=InboxCommand.Action.EXPIRE).exists()

    time.sleep(max(0.0, (soon - timezone.now()).total_seconds()) + 0.05)
    housekeeping(runner=runner)
    assert drain(runner) == 1  # the EXPIRE command
    expired, resting = Order.objects.get(pk=short.data["id"]), Order.objects.get(pk=later.data["id"])
    assert (expired.status, expired.held_fen, expired.remaining) == (Order.Status.EXPIRED, 0, 2)
    assert resting.status == Order.Status.OPEN
    assert [int(o["order_id"]) for o in runner.books[instrument.id].orders()] == [resting.id]
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == resting.held_fen
    assert invariants_check() == []


def test_a_market_order_before_any_reference_price_is_refused_with_409(funded_buyer, listed_provider, fee_tier):
    from exchange.services import order_place
    from accounts.access import actor_from_user
    from exchange.errors import AppError

    instrument = make_instrument(reference_fen=None, days_ahead=4)  # continuous, never traded, no auction price
    list_capacity(organisation=listed_provider.organisation, instrument=instrument, scu_h=100)
    market = {"instrument": instrument.code, "side": "buy", "type": "market", "qty": 5, "tif": "IOC"}
    response = token_client(funded_buyer).post("/api/v1/orders/", market, format="json")
    assert response.status_code == 409 and response.data["code"] == "no_reference_price", response.data
    sell = token_client(listed_provider).post("/api/v1/orders/", {**market, "side": "sell"}, format="json")
    assert sell.status_code == 409 and sell.data["code"] == "no_reference_price"
    batch = token_client(funded_buyer).post("/api/v1/orders/batch/", {"orders": [market]}, format="json")
    assert [(r["status"], r["code"]) for r in batch.data["results"]] == [("rejected", "no_reference_price")]
    with pytest.raises(AppError) as refused:
        order_place(actor=actor_from_user(funded_buyer.user), data=market)
    assert (refused.value.code, refused.value.status_code) == ("no_reference_price", 409)
    assert not Order.objects.exists() and not InboxCommand.objects.exists()
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 0
    # A limit order is how the first price is made.
    limit = token_client(funded_buyer).post("/api/v1/orders/", {**market, "type": "limit", "price": "20.00",
                                                                "tif": "GTC"}, format="json")
    assert limit.status_code == 201


@pytest.mark.parametrize("new_qty, left", [(8, 4), (4, 4), (3, 3)])
def test_an_amend_cuts_only_what_the_fills_before_it_left(instrument, funded_buyer, listed_provider, runner,
                                                          new_qty, left):
    """Entry checks the cut against the remaining it reads (10); a fill processed before the amend, in the
    same batch, leaves 4. A cut to 8 or 4 is then no cut and the 4 stay; a cut to 3 still cuts. Never
    more than the order's quantity, never more than its hold covers."""
    from exchange.services import hold_per_lot

    buyer, seller = token_client(funded_buyer), token_client(listed_provider)
    bid = buyer.post("/api/v1/orders/", order(instrument, "buy", "19.00", 10), format="json").data["id"]
    drain(runner)
    assert seller.post("/api/v1/orders/", order(instrument, "sell", "19.00", 6), format="json").status_code == 201
    amend = buyer.patch(f"/api/v1/orders/{bid}/", {"qty": new_qty, "price": "19.10"}, format="json")
    assert amend.status_code == 202
    assert runner.step() == 2  # the ask and the amend in one batch
    placed = Order.objects.get(pk=bid)
    per_lot = hold_per_lot(price_fen=1910, organisation_id=funded_buyer.organisation_id)
    assert (placed.filled, placed.remaining, placed.price_fen, placed.held_fen) == (6, left, 1910, per_lot * left)
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == per_lot * left
    assert invariants_check() == []
    # What is left trades, and no more.
    assert seller.post("/api/v1/orders/", order(instrument, "sell", "19.10", 10), format="json").status_code == 201
    drain(runner)
    placed.refresh_from_db()
    assert (placed.status, placed.filled, placed.held_fen) == (Order.Status.FILLED, 6 + left, 0)
    assert sum(Trade.objects.filter(buy_order_id=bid).values_list("qty", flat=True)) == 6 + left
    assert invariants_check() == []


def test_an_ask_amended_after_a_fill_in_the_same_batch_keeps_to_its_capacity_hold(instrument, funded_buyer, listed_provider, runner):
    buyer, seller = token_client(funded_buyer), token_client(listed_provider)
    ask = seller.post("/api/v1/orders/", order(instrument, "sell", "20.00", 10), format="json").data["id"]
    drain(runner)
    assert buyer.post("/api/v1/orders/", order(instrument, "buy", "20.00", 6), format="json").status_code == 201
    assert seller.patch(f"/api/v1/orders/{ask}/", {"qty": 8}, format="json").status_code == 202
    assert runner.step() == 2
    placed = Order.objects.get(pk=ask)
    assert (placed.filled, placed.remaining) == (6, 4)
    position = CapacityPosition.objects.get(organisation=listed_provider.organisation)
    assert (position.held, position.sold) == (4, 6)
    assert [int(o["qty"]) for o in runner.books[instrument.id].orders()] == [4]
    assert invariants_check() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_fast_route_refuses_a_market_order_without_reference_price_with_409(buyer, fee_tier):
    from asgiref.sync import sync_to_async
    from django.db import connections

    from exchange.asgi import order_entry
    from tests.exchange.test_live import post

    @sync_to_async
    def setup():
        instrument = make_instrument(reference_fen=None, days_ahead=4)
        ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
        return instrument, token_client(buyer).raw_token

    instrument, token = await setup()
    try:
        status, body = await post("/api/v1/orders/", {"instrument": instrument.code, "side": "buy", "type": "market",
                                                      "qty": 5, "tif": "IOC"}, token)
        assert (status, body["code"]) == (409, "no_reference_price")
        assert not await Order.objects.aexists()
    finally:
        await order_entry.aclose()
        await sync_to_async(connections.close_all)()
