"""A halt reaches every path: amends are refused at entry, and the engine stops matching,
including orders that were already waiting in the inbox."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from exchange import ledger
from exchange.asgi import application
from exchange.instruments import housekeeping, instrument_halt, instrument_resume
from exchange.models import InboxCommand, Instrument, Order, Trade
from tests.conftest import token_client
from tests.exchange.conftest import drain, list_capacity, make_instrument

pytestmark = pytest.mark.django_db(transaction=True)


def _bid(instrument, price="20.00", qty=5):
    return {"instrument": instrument.code, "side": "buy", "price": price, "qty": qty}


@pytest.fixture
def resting_bid(fee_tier, funded_buyer, runner):
    instrument = make_instrument()
    client = token_client(funded_buyer)
    order_id = client.post("/api/v1/orders/", _bid(instrument), format="json").data["id"]
    drain(runner)
    assert Order.objects.get(pk=order_id).status == Order.Status.OPEN
    return client, instrument, order_id


def test_amends_are_refused_while_halted_and_cancels_are_not(resting_bid):
    client, instrument, order_id = resting_bid
    instrument_halt(instrument=instrument)
    for body in ({"price": "25.00"}, {"qty": 1}):
        response = client.patch(f"/api/v1/orders/{order_id}/", body, format="json")
        assert response.status_code == 409 and response.data["code"] == "instrument_halted", body
    assert not InboxCommand.objects.filter(action="amend").exists()
    assert ledger.balances(organisation=Order.objects.get(pk=order_id).organisation)["held"] == \
        Order.objects.get(pk=order_id).held_fen  # no extra hold taken for the refused price
    # A trader must be able to pull orders from a halted market.
    assert client.delete(f"/api/v1/orders/{order_id}/").status_code == 202


def test_amends_and_cancels_are_refused_once_gate_closure_has_passed(resting_bid):
    client, instrument, order_id = resting_bid
    # Gate closure passed; the engine has not closed the instrument yet (its state is still continuous).
    Instrument.objects.filter(pk=instrument.pk).update(gate_closure_at=timezone.now() - timedelta(seconds=1))
    response = client.patch(f"/api/v1/orders/{order_id}/", {"price": "25.00"}, format="json")
    assert response.status_code == 409 and response.data["code"] == "gate_closed"
    assert client.delete(f"/api/v1/orders/{order_id}/").status_code == 409
    assert not InboxCommand.objects.exclude(action="new").exists()


@pytest.mark.asyncio
async def test_a_websocket_amend_is_refused_while_halted_and_a_cancel_is_not(resting_bid, asgi_closed):
    client, instrument, order_id = resting_bid
    await sync_to_async(instrument_halt)(instrument=instrument)
    ws = WebsocketCommunicator(application, f"/ws/events/?token={client.raw_token}",
                               headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from(timeout=3))["type"] == "hello"
    await ws.send_json_to({"action": "amend", "order_id": order_id, "price": "25.00", "request_id": 1})
    reply = await ws.receive_json_from(timeout=5)
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "instrument_halted", 1)
    await ws.send_json_to({"action": "cancel", "order_id": order_id, "request_id": 2})
    reply = await ws.receive_json_from(timeout=5)
    assert (reply["type"], reply["result"], reply["request_id"]) == ("ack", "cancel_requested", 2)
    await ws.disconnect()
    assert not await InboxCommand.objects.filter(action="amend").aexists()


def test_a_halt_stops_the_engine_from_matching_orders_already_in_the_inbox(fee_tier, funded_buyer, listed_provider,
                                                                           instrument, runner):
    buyer, seller = token_client(funded_buyer), token_client(listed_provider, scopes=("read", "trade", "provide"))
    ask = seller.post("/api/v1/orders/", {**_bid(instrument), "side": "sell"}, format="json").data["id"]
    bid = buyer.post("/api/v1/orders/", _bid(instrument), format="json").data["id"]
    messages = []
    publish = runner._publish
    runner._publish = lambda writes: (messages.extend(json.loads(m) for _, m in writes.market_data), publish(writes))

    instrument_halt(instrument=instrument)  # after both orders were accepted, before the engine saw them
    drain(runner)

    assert not Trade.objects.exists()
    assert {Order.objects.get(pk=o).status for o in (ask, bid)} == {Order.Status.OPEN}  # resting, not matched
    assert messages and messages[-1]["state"] == "halted"
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.HALTED

    # Resuming goes through a call auction, which uncrosses them when it ends.
    instrument_resume(instrument=instrument)
    drain(runner)
    assert not Trade.objects.exists()
    assert messages[-1]["state"] == "auction"
    Instrument.objects.filter(pk=instrument.pk).update(auction_ends_at=timezone.now() - timedelta(seconds=1))
    housekeeping(runner=runner)
    drain(runner)
    assert Trade.objects.filter(buy_order_id=bid, sell_order_id=ask, qty=5).exists()
    assert messages[-1]["state"] == "continuous"
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.CONTINUOUS
    assert ledger.ledger_check() == []


def test_a_runner_started_while_halted_does_not_match(fee_tier, funded_buyer, listed_provider, instrument):
    from exchange.engine import EngineRunner

    buyer, seller = token_client(funded_buyer), token_client(listed_provider, scopes=("read", "trade", "provide"))
    seller.post("/api/v1/orders/", {**_bid(instrument), "side": "sell"}, format="json")
    buyer.post("/api/v1/orders/", _bid(instrument), format="json")
    instrument_halt(instrument=instrument)
    runner = EngineRunner()
    runner.load()
    drain(runner)
    assert not Trade.objects.exists()
    assert Order.objects.filter(status=Order.Status.OPEN).count() == 2


# --- every path refuses new orders with instrument_halted ------------------------------------


@pytest.mark.asyncio
async def test_new_orders_are_refused_while_halted_on_every_path(fee_tier, funded_buyer, client, asgi_closed):
    from tests.exchange.test_live import post

    instrument = await sync_to_async(make_instrument)()
    await sync_to_async(instrument_halt)(instrument=instrument)
    api = await sync_to_async(token_client)(funded_buyer)

    # The fast route (a token, no Idempotency-Key), one order and a batch.
    status, body = await post("/api/v1/orders/", _bid(instrument), api.raw_token)
    assert (status, body["code"]) == (409, "instrument_halted")
    status, body = await post("/api/v1/orders/batch/", {"orders": [_bid(instrument), _bid(instrument, "21.00")]},
                              api.raw_token)
    assert status == 200 and [r["code"] for r in body["results"]] == ["instrument_halted"] * 2
    # DRF: with an Idempotency-Key, and from a signed-in browser.
    response = await sync_to_async(api.post)("/api/v1/orders/", _bid(instrument), format="json",
                                              HTTP_IDEMPOTENCY_KEY="halted-1")
    assert (response.status_code, response.data["code"]) == (409, "instrument_halted")
    await sync_to_async(client.force_login)(funded_buyer.user)
    response = await sync_to_async(client.post)("/api/v1/orders/", _bid(instrument), content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (409, "instrument_halted")
    # A WebSocket command.
    ws = WebsocketCommunicator(application, f"/ws/events/?token={api.raw_token}", headers=[(b"origin", b"http://127.0.0.1")])
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from(timeout=3))["type"] == "hello"
    await ws.send_json_to({"action": "place", **_bid(instrument), "request_id": 7})
    reply = await ws.receive_json_from(timeout=5)
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "instrument_halted", 7)
    assert "halted by the regulator" in reply["detail"]
    await ws.disconnect()

    assert not await Order.objects.aexists() and not await InboxCommand.objects.filter(action="new").aexists()
    balances = await sync_to_async(ledger.balances)(organisation=funded_buyer.organisation)
    assert balances["held"] == 0  # nothing held for a refused order


# --- market-data subscribers hear the state change -------------------------------------------


@pytest.mark.asyncio
async def test_subscribers_see_the_halt_the_auction_and_the_uncross_live(fee_tier, funded_buyer, listed_provider,
                                                                       instrument, runner, asgi_closed):
    """Over the real channel (Redis pub/sub and the web process's fan-out), as a browser gets it."""
    buyer = await sync_to_async(token_client)(funded_buyer)
    seller = await sync_to_async(token_client)(listed_provider, scopes=("read", "trade", "provide"))
    public = WebsocketCommunicator(application, "/ws/market/", headers=[(b"origin", b"http://127.0.0.1")])
    assert (await public.connect())[0]
    await public.send_json_to({"action": "subscribe", "instrument": instrument.code})
    snapshot = await public.receive_json_from(timeout=5)
    assert (snapshot["type"], snapshot["state"]) == ("md.snapshot", "continuous")

    async def next_state():
        while True:
            message = await public.receive_json_from(timeout=5)
            if message["type"] == "md.update":
                return message

    # An ask rests before the halt; a crossing bid arrives in the call auction after it.
    await sync_to_async(seller.post)("/api/v1/orders/", {**_bid(instrument), "side": "sell"}, format="json")
    await sync_to_async(instrument_halt)(instrument=instrument)
    await sync_to_async(drain)(runner)
    assert (await next_state())["state"] == "halted"

    await sync_to_async(instrument_resume)(instrument=instrument)
    response = await sync_to_async(buyer.post)("/api/v1/orders/", _bid(instrument), format="json")
    assert response.status_code == 201
    await sync_to_async(drain)(runner)
    update = await next_state()
    assert update["state"] == "auction" and update["trades"] == []
    assert not await Trade.objects.aexists()

    await Instrument.objects.filter(pk=instrument.pk).aupdate(auction_ends_at=timezone.now() - timedelta(seconds=1))
    await sync_to_async(housekeeping)(runner=runner)
    await sync_to_async(drain)(runner)
    update = await next_state()
    assert update["state"] == "continuous" and [t["qty"] for t in update["trades"]] == [5]
    await public.disconnect()


def test_a_halt_and_a_resumption_between_two_batches_still_go_through_an_auction(fee_tier, funded_buyer,
                                                                                listed_provider, instrument, runner):
    """The runner never saw the halt: the resumption's command starts the call auction itself."""
    buyer, seller = token_client(funded_buyer), token_client(listed_provider, scopes=("read", "trade", "provide"))
    messages = []
    publish = runner._publish
    runner._publish = lambda writes: (messages.extend(json.loads(m) for _, m in writes.market_data), publish(writes))
    instrument_halt(instrument=instrument)
    instrument_resume(instrument=instrument)
    seller.post("/api/v1/orders/", {**_bid(instrument), "side": "sell"}, format="json")
    buyer.post("/api/v1/orders/", _bid(instrument), format="json")
    drain(runner)
    assert not Trade.objects.exists() and messages[-1]["state"] == "auction"
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.AUCTION
    Instrument.objects.filter(pk=instrument.pk).update(auction_ends_at=timezone.now() - timedelta(seconds=1))
    housekeeping(runner=runner)
    drain(runner)
    assert Trade.objects.get().qty == 5 and messages[-1]["state"] == "continuous"
    assert ledger.ledger_check() == []
