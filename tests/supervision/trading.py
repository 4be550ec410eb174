"""An instrument's day traded through the real order entry and engine, for the audit and
replay tests: an opening auction, continuous trading with amendments, cancels, an IOC and a
market order, a halt with orders waiting, its resumption through a call auction, and
trading after it. Each step is its own engine batch (or a few), as the runner would make
them; tests using it commit (``transaction=True``), so each batch has its own time."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import Membership, Organisation
from exchange import ledger
from exchange.engine import EngineRunner
from accounts.access import actor_from_user
from exchange.instruments import instrument_open
from exchange.models import FeeTier, Instrument, Order, Trade
from tests.conftest import token_client
from tests.exchange.conftest import drain, list_capacity, make_instrument
from supervision import instruments as console
from tests.factories import MembershipFactory


@dataclass
class Day:
    instrument: Instrument
    sellers: tuple
    buyers: tuple
    members: dict


def _order(client, instrument, side, qty, price=None, **extra) -> int:
    body = {"instrument": instrument.code, "side": side, "qty": qty, **extra}
    if price is not None:
        body["price"] = price
    response = client.post("/api/v1/orders/", body, format="json")
    assert response.status_code in (201, 202), response.data
    return response.data["id"]


def _amend(client, order_id, **body) -> None:
    response = client.patch(f"/api/v1/orders/{order_id}/", body, format="json")
    assert response.status_code == 202, response.data


def _cancel(client, order_id) -> None:
    assert client.delete(f"/api/v1/orders/{order_id}/").status_code == 202


def trade_a_day() -> Day:
    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5,
                                                                  is_default=True))
    instrument = make_instrument(state=Instrument.State.PRE_OPEN, reference_fen=None)
    members = {}
    for name in ("seller_a", "seller_b"):
        members[name] = MembershipFactory(organisation__kind=Organisation.Kind.PROVIDER,
                                          role=Membership.Role.PROVIDER_ADMIN)
        list_capacity(organisation=members[name].organisation, instrument=instrument, scu_h=500)
    for name in ("buyer_x", "buyer_y"):
        members[name] = MembershipFactory(organisation__kind=Organisation.Kind.BUYER, role=Membership.Role.TRADER)
        ledger.deposit(organisation=members[name].organisation, amount_fen=1_000_000_00)
    members["regulator"] = MembershipFactory(organisation__kind=Organisation.Kind.REGULATOR,
                                             role=Membership.Role.REGULATOR)
    regulator = actor_from_user(members["regulator"].user)
    here = console.Scope("instrument", instrument.code)
    a, b = (token_client(members[n], ("read", "trade", "provide")) for n in ("seller_a", "seller_b"))
    x, y = (token_client(members[n]) for n in ("buyer_x", "buyer_y"))
    runner = EngineRunner()
    runner.load()

    # Pre-open: the book collects; one bid is repriced; the opening auction uncrosses.
    _order(a, instrument, "sell", 10, "20.00")
    _order(b, instrument, "sell", 6, "20.40")
    _order(x, instrument, "buy", 8, "20.50")
    low_bid = _order(y, instrument, "buy", 5, "19.80")
    drain(runner)
    _amend(y, low_bid, price="20.10")
    drain(runner)
    instrument_open(instrument=instrument)
    drain(runner)
    assert Trade.objects.filter(aggressor="auction").exists()

    # Continuous: takers, a cut that keeps priority, a reprice that crosses, a cancel, IOC, market.
    _order(x, instrument, "buy", 4, "20.40")
    ask = _order(a, instrument, "sell", 3, "21.00")
    bid = _order(y, instrument, "buy", 2, "19.00")
    spare = _order(y, instrument, "buy", 7, "18.50")
    drain(runner)
    _amend(a, ask, qty=2)
    _amend(y, bid, price="21.00")
    _cancel(y, spare)
    drain(runner)
    _order(b, instrument, "sell", 5, "20.60")
    _order(x, instrument, "buy", 3, "20.70", tif="IOC")
    _order(y, instrument, "buy", 1, type="market", tif="IOC")
    drain(runner)

    # Orders waiting when the regulator halts; the book collects, resumes through a call auction.
    _order(a, instrument, "sell", 4, "20.80")
    _order(x, instrument, "buy", 6, "20.90")
    console.instruments_halt(actor=regulator, scope=here, reason="Disorderly market", orders="keep")
    drain(runner)
    assert not Trade.objects.filter(buy_order__in=Order.objects.filter(price_fen=2090)).exists()
    console.instruments_resume(actor=regulator, scope=here, reason="Orderly again")
    drain(runner)
    instrument_open(instrument=instrument)
    drain(runner)
    _order(b, instrument, "sell", 2, "20.85")
    _order(y, instrument, "buy", 3, "20.95")
    drain(runner)

    # A band narrowed to ±0.1 %: a cross far from the reference stops in a volatility auction
    # rather than trading (with the listed band it would have traded at once).
    console.instrument_band_set(actor=regulator, code=instrument.code, band_bps=10, reason="Tighter band")
    auctions = Trade.objects.filter(aggressor="auction").count()
    _order(a, instrument, "sell", 2, "21.50")
    _order(x, instrument, "buy", 2, "21.50")
    drain(runner)
    assert not Trade.objects.filter(price_fen=2150).exists()
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.AUCTION
    instrument_open(instrument=instrument)
    drain(runner)
    assert Trade.objects.filter(aggressor="auction").count() > auctions
    runner.close()
    return Day(instrument, (members["seller_a"], members["seller_b"]), (members["buyer_x"], members["buyer_y"]),
               members)
