"""The trading loop through the REST API: order entry, the engine runner, money, capacity."""

from decimal import Decimal

import pytest

from accounts.models import ApiToken, Organisation
from exchange.errors import AppError
from exchange import ledger
from exchange.engine import EngineRunner
from exchange.models import Allocation, CapacityPosition, InboxCommand, Instrument, LedgerAccount, Order, Trade
from marketplace.models import ListingPeriod
from tests.conftest import token_client
from tests.exchange.conftest import drain

pytestmark = pytest.mark.django_db


def bid(instrument, price="20.50", qty=60, **extra):
    return {"instrument": instrument.code, "side": "buy", "price": price, "qty": qty, **extra}


def ask(instrument, price="20.00", qty=100, **extra):
    return {"instrument": instrument.code, "side": "sell", "price": price, "qty": qty, **extra}


def assert_ledger_balanced():
    from exchange.invariants import invariants_check

    assert invariants_check() == []
    assert sum(LedgerAccount.objects.values_list("balance", flat=True)) == 0


def test_ask_and_bid_cross_into_a_trade_with_escrow_fees_and_allocation(instrument, funded_buyer, listed_provider, runner):
    seller = token_client(listed_provider, scopes=("read", "trade", "provide"))
    buyer = token_client(funded_buyer)
    placed_ask = seller.post("/api/v1/orders/", ask(instrument), format="json")
    assert placed_ask.status_code == 201, placed_ask.data
    assert CapacityPosition.objects.get(organisation=listed_provider.organisation).held == 100
    drain(runner)
    placed_bid = buyer.post("/api/v1/orders/", bid(instrument), format="json")
    assert placed_bid.status_code == 201, placed_bid.data
    # price 20.50 + 5 bps taker fee per lot (ceil 1.03 fen → 2 fen) = 20.52 × 60 held
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 2052 * 60
    drain(runner)

    trade = Trade.objects.get()
    assert (trade.price_fen, trade.qty, trade.aggressor) == (2000, 60, "buy")
    assert trade.buyer_fee_fen == 60 and trade.seller_fee_fen == 24  # 5 bps taker, 2 bps maker of 1,200.00
    balances = ledger.balances(organisation=funded_buyer.organisation)
    assert balances["held"] == 0
    assert balances["escrow"] == 2000 * 60
    assert balances["available"] == 1_000_000_00 - 2000 * 60 - 60
    assert ledger.balances(organisation=listed_provider.organisation)["payable"] == -24
    assert Order.objects.get(pk=placed_bid.data["id"]).status == Order.Status.FILLED
    sell_order = Order.objects.get(pk=placed_ask.data["id"])
    assert (sell_order.status, sell_order.remaining, sell_order.filled) == (Order.Status.PARTIALLY_FILLED, 40, 60)

    allocation = Allocation.objects.get()
    assert allocation.holder == funded_buyer.organisation and allocation.scu_h == 60
    assert allocation.listing_period.listing.asset.provider == listed_provider.organisation
    assert allocation.device_hours == Decimal("60.0000")
    assert ListingPeriod.objects.get().sold_scu_h == 60
    position = CapacityPosition.objects.get(organisation=listed_provider.organisation)
    assert (position.held, position.sold) == (40, 60)
    assert CapacityPosition.objects.get(organisation=funded_buyer.organisation).bought == 60
    assert_ledger_balanced()

    fills = buyer.get("/api/v1/fills/")
    assert fills.status_code == 200 and fills.data["results"][0]["price"] == "20.00"
    allocations = buyer.get("/api/v1/allocations/")
    assert allocations.data["results"][0]["scu_h"] == 60


def test_a_better_price_is_released_to_available(instrument, funded_buyer, listed_provider, runner):
    token_client(listed_provider).post("/api/v1/orders/", ask(instrument, price="19.00", qty=10), format="json")
    drain(runner)
    token_client(funded_buyer).post("/api/v1/orders/", bid(instrument, price="21.00", qty=10), format="json")
    drain(runner)
    balances = ledger.balances(organisation=funded_buyer.organisation)
    fee = Trade.objects.get().buyer_fee_fen
    assert balances == {"available": 1_000_000_00 - 1900 * 10 - fee, "held": 0, "escrow": 19000, "payable": 0}
    assert_ledger_balanced()


def test_insufficient_funds_is_422_and_writes_nothing(instrument, buyer):
    ledger.deposit(organisation=buyer.organisation, amount_fen=1000_00)
    response = token_client(buyer).post("/api/v1/orders/", bid(instrument, price="20.00", qty=100), format="json")
    assert response.status_code == 422
    assert response.data["code"] == "insufficient_funds"
    assert not Order.objects.exists() and not InboxCommand.objects.exists()
    assert ledger.balances(organisation=buyer.organisation)["available"] == 1000_00


def test_an_ask_beyond_listed_capacity_is_refused(instrument, listed_provider):
    client = token_client(listed_provider)
    assert client.post("/api/v1/orders/", ask(instrument, qty=600), format="json").status_code == 201
    response = client.post("/api/v1/orders/", ask(instrument, qty=401), format="json")
    assert response.status_code == 422 and response.data["code"] == "insufficient_capacity"
    assert Order.objects.count() == 1


def test_a_provider_without_listings_cannot_sell(instrument, provider):
    response = token_client(provider).post("/api/v1/orders/", ask(instrument, qty=1), format="json")
    assert response.status_code == 422 and response.data["code"] == "insufficient_capacity"


def test_repeated_client_order_id_returns_the_first_order(instrument, funded_buyer):
    client = token_client(funded_buyer)
    first = client.post("/api/v1/orders/", bid(instrument, client_order_id="abc"), format="json")
    again = client.post("/api/v1/orders/", bid(instrument, client_order_id="abc", price="19.00"), format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.data["id"] == first.data["id"] and again.data["price"] == "20.50"
    assert Order.objects.count() == 1 and InboxCommand.objects.count() == 1
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 2052 * 60


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"instrument": "NOPE.XX.2000-01-01"}, "instrument"),
        ({"side": "hold"}, "side"),
        ({"price": "20.001"}, "price"),
        ({"price": 20.5}, "price"),
        ({"price": "-1"}, "price"),
        ({"qty": 0}, "qty"),
        ({"qty": "10"}, "qty"),
        ({"tif": "DAY"}, "tif"),
        ({"tif": "GTD"}, "expires_at"),
        ({"type": "market"}, "price"),
        ({"post_only": True, "tif": "IOC"}, "post_only"),
        ({"colour": "red"}, "non_field_errors"),
        ({"client_order_id": "x" * 65}, "client_order_id"),
    ],
)
def test_bad_orders_are_400_naming_the_field_and_write_nothing(instrument, funded_buyer, changes, field):
    response = token_client(funded_buyer).post("/api/v1/orders/", {**bid(instrument), **changes}, format="json")
    assert response.status_code == 400, response.data
    assert response.data["code"] == "invalid" and field in response.data["fields"]
    assert not Order.objects.exists()


def test_cancel_releases_the_hold_and_a_repeat_changes_nothing(instrument, funded_buyer, runner):
    client = token_client(funded_buyer)
    order_id = client.post("/api/v1/orders/", bid(instrument), format="json").data["id"]
    drain(runner)
    assert client.delete(f"/api/v1/orders/{order_id}/").status_code == 202
    repeat = client.delete(f"/api/v1/orders/{order_id}/")
    assert repeat.status_code == 409 and repeat.data["code"] == "change_pending"
    drain(runner)
    assert Order.objects.get(pk=order_id).status == Order.Status.CANCELLED
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 0
    after = client.delete(f"/api/v1/orders/{order_id}/")
    assert after.status_code == 409 and after.data["code"] == "order_not_live"
    assert_ledger_balanced()


def test_nobody_else_can_see_or_cancel_an_order(instrument, funded_buyer, provider, runner):
    order_id = token_client(funded_buyer).post("/api/v1/orders/", bid(instrument), format="json").data["id"]
    other = token_client(provider)
    assert other.get(f"/api/v1/orders/{order_id}/").status_code == 404
    assert other.delete(f"/api/v1/orders/{order_id}/").status_code == 404
    assert InboxCommand.objects.filter(action="cancel").count() == 0


def test_amend_quantity_down_keeps_priority_price_change_loses_it(instrument, funded_buyer, buyer, runner):
    from tests.factories import MembershipFactory

    second = MembershipFactory(organisation__kind="buyer")
    ledger.deposit(organisation=second.organisation, amount_fen=1_000_000_00)
    first_client, second_client = token_client(funded_buyer), token_client(second)
    first = first_client.post("/api/v1/orders/", bid(instrument, price="20.00", qty=10), format="json").data["id"]
    second_order = second_client.post("/api/v1/orders/", bid(instrument, price="20.00", qty=10), format="json").data["id"]
    drain(runner)
    assert first_client.patch(f"/api/v1/orders/{first}/", {"qty": 4}, format="json").status_code == 202
    drain(runner)
    order = Order.objects.get(pk=first)
    assert order.remaining == 4 and order.held_fen == order.hold_per_lot_fen * 4
    assert [int(o["order_id"]) for o in runner.books[instrument.id].orders()] == [first, second_order]

    assert first_client.patch(f"/api/v1/orders/{first}/", {"price": "20.10"}, format="json").status_code == 202
    drain(runner)
    order.refresh_from_db()
    assert order.price_fen == 2010 and order.held_fen == order.hold_per_lot_fen * 4
    bids = [int(o["order_id"]) for o in runner.books[instrument.id].orders()]
    assert bids == [first, second_order]  # better price, so first again despite losing time priority
    assert first_client.patch(f"/api/v1/orders/{first}/", {"price": "20.00"}, format="json").status_code == 202
    drain(runner)
    assert [int(o["order_id"]) for o in runner.books[instrument.id].orders()] == [second_order, first]
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == Order.objects.get(pk=first).held_fen
    assert_ledger_balanced()


def test_amend_rejects_bad_input_and_more_quantity(instrument, funded_buyer, runner):
    client = token_client(funded_buyer)
    order_id = client.post("/api/v1/orders/", bid(instrument, qty=5), format="json").data["id"]
    drain(runner)
    for body in ({}, {"qty": 6}, {"qty": 0}, {"price": "abc"}, {"side": "sell"}):
        response = client.patch(f"/api/v1/orders/{order_id}/", body, format="json")
        assert response.status_code == 400, (body, response.data)
    assert not InboxCommand.objects.filter(action="amend").exists()


def test_halted_and_closed_instruments_refuse_orders(instrument, funded_buyer):
    client = token_client(funded_buyer)
    Instrument.objects.filter(pk=instrument.pk).update(state=Instrument.State.HALTED)
    halted = client.post("/api/v1/orders/", bid(instrument), format="json")
    assert halted.status_code == 409 and halted.data["code"] == "instrument_halted"
    Instrument.objects.filter(pk=instrument.pk).update(state=Instrument.State.CONTINUOUS,
                                                       gate_closure_at=instrument.delivery_start.replace(year=2000))
    closed = client.post("/api/v1/orders/", bid(instrument), format="json")
    assert closed.status_code == 409 and closed.data["code"] == "gate_closed"
    assert not Order.objects.exists()
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 0


def test_opening_auction_collects_then_clears_at_one_price(funded_buyer, listed_provider, fee_tier):
    from tests.exchange.conftest import list_capacity, make_instrument

    instrument = make_instrument(state=Instrument.State.PRE_OPEN, reference_fen=None, days_ahead=3)
    list_capacity(organisation=listed_provider.organisation, instrument=instrument, scu_h=100)
    runner = EngineRunner()
    runner.load()
    seller, buyer = token_client(listed_provider), token_client(funded_buyer)
    seller.post("/api/v1/orders/", ask(instrument, price="19.00", qty=30), format="json")
    seller.post("/api/v1/orders/", ask(instrument, price="20.00", qty=30), format="json")
    buyer.post("/api/v1/orders/", bid(instrument, price="21.00", qty=40), format="json")
    buyer.post("/api/v1/orders/", bid(instrument, price="20.00", qty=10), format="json")
    market = buyer.post("/api/v1/orders/", {**bid(instrument), "type": "market", "price": None, "tif": "IOC"}, format="json")
    assert market.status_code == 409 and market.data["code"] == "auction_in_progress"
    drain(runner)
    assert not Trade.objects.exists()  # collected, crossed, not matched
    from exchange.instruments import instrument_open

    instrument_open(instrument=instrument)
    drain(runner)
    prices = set(Trade.objects.values_list("price_fen", flat=True))
    assert prices == {2000} and sum(Trade.objects.values_list("qty", flat=True)) == 50
    instrument.refresh_from_db()
    assert instrument.state == Instrument.State.CONTINUOUS and instrument.reference_price_fen == 2000
    assert_ledger_balanced()


def test_volatility_moves_the_instrument_into_an_auction(instrument, funded_buyer, listed_provider, runner):
    seller = token_client(listed_provider)
    seller.post("/api/v1/orders/", ask(instrument, price="25.00", qty=10), format="json")  # band is 18.00–22.00
    drain(runner)
    token_client(funded_buyer).post("/api/v1/orders/", bid(instrument, price="26.00", qty=10), format="json")
    drain(runner)
    instrument.refresh_from_db()
    assert instrument.state == Instrument.State.AUCTION and instrument.auction_ends_at is not None
    assert not Trade.objects.exists()


def test_revoked_token_and_suspended_organisation_stop_the_very_next_order(instrument, funded_buyer):
    client = token_client(funded_buyer)
    assert client.post("/api/v1/orders/", bid(instrument, qty=1), format="json").status_code == 201
    Organisation.objects.filter(pk=funded_buyer.organisation_id).update(kyc_status="suspended")
    suspended = client.post("/api/v1/orders/", bid(instrument, qty=1), format="json")
    assert suspended.status_code == 403 and suspended.data["code"] == "organisation_suspended"
    Organisation.objects.filter(pk=funded_buyer.organisation_id).update(kyc_status="verified")
    ApiToken.objects.filter(membership=funded_buyer).update(revoked_at="2026-01-01T00:00:00Z")
    revoked = client.post("/api/v1/orders/", bid(instrument, qty=1), format="json")
    assert revoked.status_code == 401
    assert Order.objects.count() == 1


def test_batch_gives_each_order_its_own_result(instrument, funded_buyer):
    client = token_client(funded_buyer)
    response = client.post("/api/v1/orders/batch/", {"orders": [
        bid(instrument, qty=1, client_order_id="a"),
        bid(instrument, qty=0),
        bid(instrument, qty=10**8, price="20.00"),
        bid(instrument, qty=1, client_order_id="a"),
    ]}, format="json")
    assert response.status_code == 200
    statuses = [(r["status"], r.get("code")) for r in response.data["results"]]
    assert statuses == [("accepted", None), ("rejected", "invalid"), ("rejected", "insufficient_funds"), ("duplicate", None)]
    assert Order.objects.count() == 1


def test_a_repeat_after_a_refused_order_is_a_new_attempt_and_its_own_repeat_a_duplicate(instrument, funded_buyer):
    client = token_client(funded_buyer)
    response = client.post("/api/v1/orders/batch/", {"orders": [
        bid(instrument, qty=10**8, price="20.00", client_order_id="b"),
        bid(instrument, qty=2, client_order_id="b"),
        bid(instrument, qty=3, client_order_id="b"),
        bid(instrument, qty=4, client_order_id="c"),
    ]}, format="json")
    results = response.data["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted", "duplicate", "accepted"]
    assert results[2]["order_id"] == results[1]["order_id"]
    assert sorted(Order.objects.values_list("client_order_id", "qty")) == [("b", 2), ("c", 4)]
    assert_ledger_balanced()


def test_orders_placed_together_share_one_hold_journal_that_equals_their_holds(instrument, funded_buyer):
    from exchange.models import Journal

    client = token_client(funded_buyer)
    response = client.post("/api/v1/orders/batch/", {"orders": [
        bid(instrument, qty=q, client_order_id=f"h{q}") for q in (1, 2, 3)]}, format="json")
    assert [r["status"] for r in response.data["results"]] == ["accepted"] * 3
    (journal,) = Journal.objects.filter(kind="hold")
    amounts = sorted(journal.legs.values_list("amount_fen", flat=True))
    held = sum(Order.objects.values_list("held_fen", flat=True))
    assert held == 2052 * 6 and amounts == [-held, held]
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == held
    single = client.post("/api/v1/orders/", bid(instrument, qty=1, client_order_id="h9"), format="json")
    assert Journal.objects.get(kind="hold", order_id=single.data["id"]).legs.count() == 2
    assert_ledger_balanced()


def test_a_client_order_id_with_quotes_commas_braces_and_backslashes_is_kept_exactly(instrument, funded_buyer):
    client = token_client(funded_buyer)
    tricky = 'a"b\\c,{d} NULL e\''
    first = client.post("/api/v1/orders/", bid(instrument, qty=1, client_order_id=tricky), format="json")
    repeat = client.post("/api/v1/orders/", bid(instrument, qty=1, client_order_id=tricky), format="json")
    assert first.status_code == 201 and repeat.status_code == 200
    assert repeat.data["id"] == first.data["id"]
    assert list(Order.objects.values_list("client_order_id", flat=True)) == [tricky]


def test_batch_rejects_a_malformed_body(instrument, funded_buyer):
    client = token_client(funded_buyer)
    for body in ({}, {"orders": []}, {"orders": "x"}, {"orders": [{}] * 1001}):
        response = client.post("/api/v1/orders/batch/", body, format="json")
        assert response.status_code == 400, response.data
    assert not Order.objects.exists()


def test_a_read_only_token_cannot_trade(instrument, funded_buyer):
    client = token_client(funded_buyer, scopes=("read",))
    response = client.post("/api/v1/orders/", bid(instrument), format="json")
    assert response.status_code == 403 and response.data["code"] == "scope_missing"
    assert client.get("/api/v1/orders/").status_code == 200


def test_pending_kyc_cannot_trade(instrument, funded_buyer):
    Organisation.objects.filter(pk=funded_buyer.organisation_id).update(kyc_status="pending")
    response = token_client(funded_buyer).post("/api/v1/orders/", bid(instrument), format="json")
    assert response.status_code == 403 and response.data["code"] == "kyc_pending"


def test_market_data_endpoints(instrument, funded_buyer, listed_provider, runner, client):
    token_client(listed_provider).post("/api/v1/orders/", ask(instrument, qty=10), format="json")
    token_client(funded_buyer).post("/api/v1/orders/", bid(instrument, price="19.50", qty=5), format="json")
    drain(runner)
    depth = client.get(f"/api/v1/instruments/{instrument.code}/depth/").json()
    assert depth["bids"] == [["19.50", 5, 1]] and depth["asks"] == [["20.00", 10, 1]]
    assert depth["seq"] == Instrument.objects.get(pk=instrument.pk).md_seq > 0
    token_client(funded_buyer).post("/api/v1/orders/", bid(instrument, price="20.00", qty=4), format="json")
    drain(runner)
    detail = client.get(f"/api/v1/instruments/{instrument.code}/").json()
    assert detail["last_price"] == "20.00" and detail["ticker"]["volume_24h"] == 4
    tape = client.get(f"/api/v1/instruments/{instrument.code}/trades/").json()
    assert tape["results"][0]["qty"] == 4
    candles = client.get(f"/api/v1/instruments/{instrument.code}/candles/?interval=1h").json()
    assert candles["candles"][-1]["close"] == "20.00" and candles["candles"][-1]["volume"] == 4
    assert client.get(f"/api/v1/instruments/{instrument.code}/candles/?interval=7m").status_code == 400
    index = client.get("/api/v1/price-index/").json()
    assert index["index"][0]["vwap"] == "20.00" and "Volume-weighted" in index["method"]
    assert client.get("/api/v1/instruments/NOPE/depth/").status_code == 404


def test_bought_capacity_can_be_resold_and_the_allocation_chain_leads_to_the_listing(instrument, funded_buyer, listed_provider, runner):
    from tests.factories import MembershipFactory

    third = MembershipFactory(organisation__kind="buyer")
    ledger.deposit(organisation=third.organisation, amount_fen=1_000_000_00)
    token_client(listed_provider).post("/api/v1/orders/", ask(instrument, qty=10), format="json")
    drain(runner)
    reseller = token_client(funded_buyer)
    reseller.post("/api/v1/orders/", bid(instrument, price="20.00", qty=10), format="json")
    drain(runner)
    too_much = reseller.post("/api/v1/orders/", ask(instrument, price="20.40", qty=11), format="json")
    assert too_much.status_code == 422 and too_much.data["code"] == "insufficient_capacity"
    assert reseller.post("/api/v1/orders/", ask(instrument, price="20.40", qty=6), format="json").status_code == 201
    drain(runner)
    token_client(third).post("/api/v1/orders/", bid(instrument, price="20.40", qty=6), format="json")
    drain(runner)
    resale = Allocation.objects.get(holder=third.organisation)
    assert resale.scu_h == 6 and resale.source.holder == funded_buyer.organisation
    assert resale.source.resold_scu_h == 6
    assert resale.listing_period.listing.asset.provider == listed_provider.organisation
    assert ListingPeriod.objects.get().sold_scu_h == 10  # the listing sold once, not twice
    assert_ledger_balanced()


def test_capacity_held_by_an_open_ask_cannot_be_withdrawn(instrument, listed_provider, runner):
    from marketplace.services import listing_change, listing_withdraw

    period = ListingPeriod.objects.get()
    placed = token_client(listed_provider).post("/api/v1/orders/", ask(instrument, qty=600), format="json")
    assert placed.status_code == 201, placed.data
    with pytest.raises(AppError) as err:
        listing_withdraw(listing=period.listing)
    assert err.value.code == "listing_sold" and "open asks" in err.value.detail
    # One device of factor 1.0 gives 24 SCU·h a day: 24 devices (576) are too few, 25 (600) are enough.
    with pytest.raises(AppError) as err:
        listing_change(listing=period.listing, device_count=24)
    assert err.value.code == "below_sold"
    assert ListingPeriod.objects.get().scu_h == 1000
    listing_change(listing=period.listing, device_count=25)
    assert ListingPeriod.objects.get().scu_h == 600


def test_amend_refuses_off_tick_prices_a_second_pending_change_and_other_organisations(instrument, funded_buyer, provider, runner):
    client = token_client(funded_buyer)
    order_id = client.post("/api/v1/orders/", bid(instrument, qty=5), format="json").data["id"]
    drain(runner)
    off_tick = client.patch(f"/api/v1/orders/{order_id}/", {"price": "20.555"}, format="json")
    assert off_tick.status_code == 400 and "price" in off_tick.data["fields"]
    assert client.patch(f"/api/v1/orders/{order_id}/", {"qty": 3}, format="json").status_code == 202
    pending = client.patch(f"/api/v1/orders/{order_id}/", {"qty": 2}, format="json")
    assert pending.status_code == 409 and pending.data["code"] == "change_pending"
    assert token_client(provider).patch(f"/api/v1/orders/{order_id}/", {"qty": 1}, format="json").status_code == 404
    assert InboxCommand.objects.filter(action="amend").count() == 1
