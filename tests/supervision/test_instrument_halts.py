"""Halting a class, a hub or the whole market from the console: the engine stops matching, open
orders are kept or cancelled through the engine (holds and capacity released), the console and
the organisations concerned hear of it live, and resuming goes through a call auction."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from accounts.access import actor_from_user
from exchange import ledger
from exchange.asgi import application
from exchange.instruments import housekeeping
from exchange.invariants import invariants_check
from exchange.models import CapacityPosition, InboxCommand, Instrument, Order, Trade
from supervision import instruments as service
from supervision.models import SupervisionAction
from tests.conftest import token_client
from tests.exchange.conftest import drain, fee_tier, funded_buyer, list_capacity, make_instrument, runner  # noqa: F401
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = [(b"origin", b"http://127.0.0.1")]
HALTED, AUCTION, CONTINUOUS = Instrument.State.HALTED, Instrument.State.AUCTION, Instrument.State.CONTINUOUS


def _order(instrument, side, price, qty=5):
    return {"instrument": instrument.code, "side": side, "price": price, "qty": qty}


@pytest.fixture
def books(fee_tier, funded_buyer, provider, runner):
    """AI24 in NX and in GBA, AI80 in NX: each with the buyer's bid at 19.00 and the provider's
    ask at 21.00 resting (not crossing)."""
    instruments = [make_instrument(class_code="AI24", hub_code="NX"), make_instrument(class_code="AI24", hub_code="GBA"),
                   make_instrument(class_code="AI80", hub_code="NX")]
    buyer, seller = token_client(funded_buyer), token_client(provider, scopes=("read", "trade", "provide"))
    for instrument in instruments:
        list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
        assert buyer.post("/api/v1/orders/", _order(instrument, "buy", "19.00"), format="json").status_code == 201
        assert seller.post("/api/v1/orders/", _order(instrument, "sell", "21.00"), format="json").status_code == 201
    drain(runner)
    assert Order.objects.filter(status=Order.Status.OPEN).count() == 6
    return instruments


@pytest.fixture
def supervisor(regulator):
    """The regulator's session actor (its role's scopes: read and supervise)."""
    return actor_from_user(regulator.user)


def states(instruments) -> list[str]:
    return [Instrument.objects.get(pk=i.pk).state for i in instruments]


def offered(provider, instrument) -> int:
    return CapacityPosition.objects.get(organisation=provider.organisation, instrument=instrument).held


def test_a_class_halt_that_cancels_takes_out_its_orders_through_the_engine(books, supervisor, funded_buyer, provider,
                                                                         runner):
    nx24, gba24, nx80 = books
    outcome = service.instruments_halt(actor=supervisor, scope=service.Scope("class", "AI24"), reason="Runaway prices",
                                       orders="cancel")
    assert sorted(i.code for i in outcome.instruments) == sorted([nx24.code, gba24.code])
    assert outcome.orders_cancelled == 4 and states(books) == [HALTED, HALTED, CONTINUOUS]
    # Cancelled as a trader's cancel is: commands for the engine, after the orders' own.
    assert InboxCommand.objects.filter(action="cancel", processed_at__isnull=True).count() == 4

    drain(runner)
    by_instrument = {i.code: set(Order.objects.filter(instrument=i).values_list("status", flat=True)) for i in books}
    assert by_instrument == {nx24.code: {"cancelled"}, gba24.code: {"cancelled"}, nx80.code: {"open"}}
    bid_80 = Order.objects.get(instrument=nx80, side="buy")
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == bid_80.held_fen > 0
    assert [offered(provider, i) for i in books] == [0, 0, 5]
    assert invariants_check() == []
    record = SupervisionAction.objects.get()
    assert (record.action, record.reason, record.details["orders"], record.details["orders_cancelled"]) == (
        "instrument.halt", "Runaway prices", "cancel", 4)
    assert record.details["scope"] == {"kind": "class", "code": "AI24"}


def test_a_market_halt_that_cancels_then_a_resumption_through_a_call_auction(books, supervisor, funded_buyer,
                                                                            provider, runner):
    service.instruments_halt(actor=supervisor, scope=service.Scope("market"), reason="Exchange incident",
                             orders="cancel")
    drain(runner)
    assert states(books) == [HALTED] * 3
    assert not Order.objects.filter(status__in=Order.LIVE).exists()
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 0
    assert [offered(provider, i) for i in books] == [0, 0, 0]
    assert invariants_check() == []

    # New orders are refused everywhere while halted.
    buyer, seller = token_client(funded_buyer), token_client(provider, scopes=("read", "trade", "provide"))
    assert buyer.post("/api/v1/orders/", _order(books[0], "buy", "21.00"), format="json").data["code"] == "instrument_halted"

    outcome = service.instruments_resume(actor=supervisor, scope=service.Scope("market"), reason="Incident over",
                                         auction_seconds=30)
    assert states(books) == [AUCTION] * 3 and len(outcome.instruments) == 3
    ends = Instrument.objects.get(pk=books[0].pk).auction_ends_at
    assert timedelta(seconds=25) < ends - timezone.now() <= timedelta(seconds=30)
    # The call auction collects crossing orders and matches nothing until it uncrosses.
    assert seller.post("/api/v1/orders/", _order(books[0], "sell", "20.00"), format="json").status_code == 201
    assert buyer.post("/api/v1/orders/", _order(books[0], "buy", "20.00"), format="json").status_code == 201
    drain(runner)
    assert not Trade.objects.exists() and states(books) == [AUCTION] * 3
    housekeeping(runner=runner)  # not due yet
    drain(runner)
    assert not Trade.objects.exists()
    Instrument.objects.update(auction_ends_at=timezone.now() - timedelta(seconds=1))
    housekeeping(runner=runner)
    drain(runner)
    assert Trade.objects.get().qty == 5 and states(books) == [CONTINUOUS] * 3
    assert invariants_check() == []


def test_a_hub_halt_that_keeps_orders_leaves_them_resting_and_other_hubs_trading(books, supervisor, funded_buyer, runner):
    nx24, gba24, nx80 = books
    service.instruments_halt(actor=supervisor, scope=service.Scope("hub", "NX"), reason="Power incident in Zhongwei")
    drain(runner)
    assert states(books) == [HALTED, CONTINUOUS, HALTED]
    assert Order.objects.filter(status=Order.Status.OPEN).count() == 6
    buyer = token_client(funded_buyer)
    assert buyer.post("/api/v1/orders/", _order(nx80, "buy", "21.00"), format="json").data["code"] == "instrument_halted"
    assert buyer.post("/api/v1/orders/", _order(gba24, "buy", "21.00"), format="json").status_code == 201
    drain(runner)
    assert Trade.objects.get().instrument_id == gba24.id  # the other hub goes on trading
    assert invariants_check() == []


def test_what_is_already_halted_counts_for_a_cancel_and_refuses_a_second_plain_halt(books, supervisor, runner):
    nx24, gba24, nx80 = books
    service.instruments_halt(actor=supervisor, scope=service.Scope("instrument", nx24.code), reason="First")
    with pytest.raises(Exception) as refused:
        service.instruments_halt(actor=supervisor, scope=service.Scope("instrument", nx24.code), reason="Again")
    assert (refused.value.code, refused.value.status_code) == ("already_halted", 409)
    # A halt that cancels cancels in the instruments halted before too.
    outcome = service.instruments_halt(actor=supervisor, scope=service.Scope("class", "AI24"), reason="Clean out",
                                       orders="cancel")
    assert outcome.orders_cancelled == 4 and outcome.record.details["newly_halted"] == [gba24.code]
    drain(runner)
    assert set(Order.objects.filter(instrument__in=[nx24, gba24]).values_list("status", flat=True)) == {"cancelled"}
    service.instruments_resume(actor=supervisor, scope=service.Scope("market"), reason="Over")
    with pytest.raises(Exception) as refused:
        service.instruments_resume(actor=supervisor, scope=service.Scope("market"), reason="Over again")
    assert (refused.value.code, refused.value.status_code) == ("not_halted", 409)
    assert invariants_check() == []


@pytest.mark.asyncio
async def test_the_console_and_the_organisations_with_orders_hear_of_a_halt_live(books, regulator, funded_buyer,
                                                                                 provider, asgi_closed):
    nx24, gba24, nx80 = books
    bystander = await sync_to_async(MembershipFactory)(organisation__kind="buyer", role="trader")
    console = WebsocketCommunicator(
        application, f"/ws/supervision/?token={(await sync_to_async(token_client)(regulator, scopes=('read',))).raw_token}",
        headers=ORIGIN)
    sockets = {"console": console}
    for name, member in (("buyer", funded_buyer), ("provider", provider), ("bystander", bystander)):
        token = (await sync_to_async(token_client)(member, scopes=("read",))).raw_token
        sockets[name] = WebsocketCommunicator(application, f"/ws/events/?token={token}", headers=ORIGIN)
    for ws in sockets.values():
        assert (await ws.connect())[0] and (await ws.receive_json_from(timeout=3))["type"] == "hello"

    api = await sync_to_async(token_client)(regulator, scopes=("read", "supervise"))
    response = await sync_to_async(api.post)("/api/v1/supervision/hubs/GBA/halt/",
                                             {"reason": "Suspected manipulation", "orders": "cancel"}, format="json")
    assert response.status_code == 200, response.data

    event = await console.receive_json_from(timeout=5)
    assert (event["type"], event["action"], event["scope"], event["reason"]) == (
        "instrument.state", "halt", {"kind": "hub", "code": "GBA"}, "Suspected manipulation")
    assert event["instruments"] == [{"code": gba24.code, "state": "halted", "band_bps": 1000, "auction_ends_at": None}]
    assert event["orders_cancelled"] == 2 and event["action_id"] == response.data["action_id"]
    for name in ("buyer", "provider"):
        told = await sockets[name].receive_json_from(timeout=5)
        assert {k: told[k] for k in ("type", "action", "instrument", "state", "orders", "orders_cancelled")} == {
            "type": "instrument.state", "action": "halt", "instrument": gba24.code, "state": "halted",
            "orders": "cancel", "orders_cancelled": 1}, name
        assert "reason" not in told and told["seq"] >= 1  # the reason stays in the regulator's record
    assert await sockets["bystander"].receive_nothing(timeout=0.5)
    for ws in sockets.values():
        await ws.disconnect()
