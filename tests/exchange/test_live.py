"""End to end with the real channel layer and Redis: orders in, events out over WebSockets."""

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from exchange import ledger
from exchange.asgi import application
from exchange.engine import EngineRunner
from exchange.fanout import hub
from exchange.models import Allocation, LedgerAccount, Trade
from tests.conftest import token_client
from tests.exchange.conftest import drain, list_capacity, make_instrument

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.usefixtures("asgi_closed")]
ORIGIN = [(b"origin", b"http://127.0.0.1")]


@sync_to_async
def market_setup(buyer, provider):
    from exchange.models import FeeTier

    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=500)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    runner = EngineRunner()
    runner.load()
    return instrument, runner, token_client(buyer), token_client(provider)


async def connect(path: str) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, path, headers=ORIGIN)
    connected, _ = await ws.connect()
    assert connected
    return ws


async def receive_until(ws, predicate, timeout=5.0) -> list[dict]:
    """Every message up to and including the first that satisfies ``predicate``."""
    seen = []
    while True:
        message = await ws.receive_json_from(timeout=timeout)
        seen.append(message)
        if predicate(message):
            return seen


async def post(path: str, body, token: str) -> tuple[int, dict]:
    """POST to the ASGI application as uvicorn would (a token and no Idempotency-Key: the fast route)."""
    sent = []
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    scope = {"type": "http", "method": "POST", "path": path, "headers": [
        (b"authorization", f"Token {token}".encode()), (b"content-type", b"application/json")],
        "query_string": b"", "asgi": {"version": "3.0"}}
    messages = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def ledger_is_balanced() -> bool:
    return ledger.ledger_check() == [] and sum(LedgerAccount.objects.values_list("balance", flat=True)) == 0


async def test_rest_orders_cross_and_every_party_hears_it_in_order(buyer, provider):
    instrument, runner, buyer_api, seller_api = await market_setup(buyer, provider)
    buyer_ws = await connect(f"/ws/events/?token={buyer_api.raw_token}")
    seller_ws = await connect(f"/ws/events/?token={seller_api.raw_token}")
    public = await connect("/ws/market/")
    for ws in (buyer_ws, seller_ws):
        assert (await ws.receive_json_from(timeout=3))["type"] == "hello"
    await public.send_json_to({"action": "subscribe", "instrument": instrument.code})
    snapshot = await public.receive_json_from(timeout=5)
    assert snapshot["type"] == "md.snapshot" and snapshot["bids"] == [] and snapshot["asks"] == []

    ask = await sync_to_async(seller_api.post)(
        "/api/v1/orders/", {"instrument": instrument.code, "side": "sell", "price": "20.00", "qty": 50}, format="json")
    assert ask.status_code == 201
    await sync_to_async(drain)(runner)
    bid = await sync_to_async(buyer_api.post)(
        "/api/v1/orders/", {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 20}, format="json")
    assert bid.status_code == 201
    await sync_to_async(drain)(runner)

    seller_events = await receive_until(seller_ws, lambda m: m["type"] == "order" and m["status"] == "partially_filled")
    assert [m["type"] for m in seller_events] == ["order", "trade", "order"]
    assert seller_events[0]["status"] == "open" and seller_events[1]["qty"] == 20
    buyer_events = await receive_until(buyer_ws, lambda m: m["type"] == "order")
    assert [(m["type"], m.get("status")) for m in buyer_events] == [("trade", None), ("order", "filled")]
    assert buyer_events[0]["price"] == "20.00" and buyer_events[0]["side"] == "buy"
    assert [m["seq"] for m in seller_events] == [1, 2, 3] and [m["seq"] for m in buyer_events] == [1, 2]

    updates = await receive_until(public, lambda m: m["type"] == "md.update" and m["trades"])
    seqs = [m["seq"] for m in updates]
    assert seqs == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(seqs)))
    assert updates[-1]["trades"][0]["qty"] == 20 and updates[-1]["ticker"]["last"] == "20.00"
    assert updates[-1]["asks"] == [["20.00", 30]]
    published = datetime.fromisoformat(updates[-1]["published_at"])
    assert published >= datetime.fromisoformat(updates[-1]["trades"][0]["time"]) and published.utcoffset() == timedelta(0)

    trade = await Trade.objects.aget()
    assert trade.buyer_id == buyer.organisation_id
    allocation = await Allocation.objects.select_related("listing_period__listing__asset").aget()
    assert allocation.listing_period.listing.asset.provider_id == provider.organisation_id
    assert await sync_to_async(ledger_is_balanced)()
    for ws in (buyer_ws, seller_ws, public):
        await ws.disconnect()


async def test_the_websocket_command_path_trades_the_same_way(buyer, provider):
    instrument, runner, buyer_api, seller_api = await market_setup(buyer, provider)
    buyer_ws = await connect(f"/ws/events/?token={buyer_api.raw_token}")
    seller_ws = await connect(f"/ws/events/?token={seller_api.raw_token}")
    for ws in (buyer_ws, seller_ws):
        await ws.receive_json_from(timeout=3)
    await seller_ws.send_json_to({"action": "place", "request_id": "s1", "instrument": instrument.code,
                                  "side": "sell", "price": "19.90", "qty": 10})
    ack = await seller_ws.receive_json_from(timeout=5)
    assert ack["type"] == "ack" and ack["request_id"] == "s1" and ack["order"]["status"] == "accepted"
    await buyer_ws.send_json_to({"action": "place", "request_id": "b1", "instrument": instrument.code,
                                 "side": "buy", "price": "20.00", "qty": 10})
    assert (await buyer_ws.receive_json_from(timeout=5))["result"] == "accepted"
    await buyer_ws.send_json_to({"action": "place", "request_id": "bad", "instrument": instrument.code,
                                 "side": "buy", "price": "abc", "qty": 10})
    error = await buyer_ws.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == "invalid" and "price" in error["fields"]
    await buyer_ws.send_json_to({"action": "explode"})
    assert (await buyer_ws.receive_json_from(timeout=5))["code"] == "invalid"
    await sync_to_async(drain)(runner)
    events = await receive_until(buyer_ws, lambda m: m["type"] == "order")
    assert events[0]["type"] == "trade" and events[0]["price"] == "19.90"
    assert (await Trade.objects.aget()).qty == 10
    assert await sync_to_async(ledger_is_balanced)()
    for ws in (buyer_ws, seller_ws):
        await ws.disconnect()


async def test_fast_order_route_acknowledges_after_commit_and_checks_everything(buyer, provider):
    from accounts.models import ApiToken, Organisation
    from exchange.models import Order

    instrument, runner, buyer_api, seller_api = await market_setup(buyer, provider)

    order = {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 5, "client_order_id": "fast-1"}
    status, body = await post("/api/v1/orders/", order, buyer_api.raw_token)
    assert status == 201 and body["status"] == "accepted"
    assert (await Order.objects.aget(pk=body["id"])).held_fen == 2001 * 5  # committed before the answer
    status, again = await post("/api/v1/orders/", order, buyer_api.raw_token)
    assert status == 200 and again == body  # the first order, as it is now (the engine has not run)
    status, bad = await post("/api/v1/orders/", {**order, "qty": -1}, buyer_api.raw_token)
    assert status == 400 and "qty" in bad["fields"]
    status, batch = await post("/api/v1/orders/batch/", {"orders": [
        {**order, "client_order_id": "fast-2"}, {**order, "side": "x"}]}, buyer_api.raw_token)
    assert status == 200 and [r["status"] for r in batch["results"]] == ["accepted", "rejected"]

    await Organisation.objects.filter(pk=buyer.organisation_id).aupdate(kyc_status="suspended")
    status, refused = await post("/api/v1/orders/", {**order, "client_order_id": "fast-3"}, buyer_api.raw_token)
    assert status == 403 and refused["code"] == "organisation_suspended"
    await Organisation.objects.filter(pk=buyer.organisation_id).aupdate(kyc_status="verified")
    await ApiToken.objects.filter(membership=buyer).aupdate(revoked_at="2026-01-01T00:00:00Z")
    status, refused = await post("/api/v1/orders/", {**order, "client_order_id": "fast-4"}, buyer_api.raw_token)
    assert status == 401 and refused["code"] == "token_revoked"
    assert await Order.objects.acount() == 2


async def test_a_stalled_subscriber_does_not_delay_others_and_can_recover_by_snapshot(buyer, provider):
    from exchange.market_data import depth_snapshot

    instrument, runner, buyer_api, seller_api = await market_setup(buyer, provider)
    fast = await connect("/ws/market/")
    await fast.send_json_to({"action": "subscribe", "instrument": instrument.code})
    first_seq = (await fast.receive_json_from(timeout=5))["seq"]
    # A subscriber whose socket stops taking messages: its writer blocks on the first send.
    stalled_sent, unblock = [], asyncio.Event()

    async def stalled_send(payload):
        stalled_sent.append(json.loads(payload))
        await unblock.wait()

    slow = hub.subscribe(instrument.id, stalled_send)
    for price in ("19.00", "19.10", "19.20", "19.30", "19.40"):
        await sync_to_async(seller_api.post)(
            "/api/v1/orders/", {"instrument": instrument.code, "side": "sell", "price": price, "qty": 1}, format="json")
        await sync_to_async(drain)(runner)
    updates = [await fast.receive_json_from(timeout=5) for _ in range(5)]
    assert [u["seq"] for u in updates] == list(range(first_seq + 1, first_seq + 6))  # the fast one got all, in time
    assert len(stalled_sent) == 1 and slow.dropped >= 1
    unblock.set()
    await asyncio.sleep(0.2)
    seqs = [m["seq"] for m in stalled_sent]
    assert seqs[-1] == first_seq + 5 and seqs != list(range(seqs[0], seqs[-1] + 1))  # a gap it can see
    snapshot = await sync_to_async(depth_snapshot)(instrument)
    assert snapshot["seq"] == seqs[-1] and len(snapshot["asks"]) == 5  # the recovery point
    hub.unsubscribe(instrument.id, slow)
    await fast.disconnect()


async def test_a_suspension_stops_the_next_websocket_command(buyer, provider):
    from accounts.models import Organisation
    from exchange.models import Order

    instrument, runner, buyer_api, seller_api = await market_setup(buyer, provider)
    ws = await connect(f"/ws/events/?token={buyer_api.raw_token}")
    await ws.receive_json_from(timeout=3)
    order = {"action": "place", "instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1}
    await ws.send_json_to({**order, "request_id": 1})
    assert (await ws.receive_json_from(timeout=5))["type"] == "ack"
    await Organisation.objects.filter(pk=buyer.organisation_id).aupdate(kyc_status="suspended")
    await ws.send_json_to({**order, "request_id": 2})
    reply = await ws.receive_json_from(timeout=5)
    assert reply["type"] == "error" and reply["code"] == "organisation_suspended" and reply["request_id"] == 2
    assert await Order.objects.acount() == 1
    await ws.disconnect()


async def test_fast_order_route_refuses_bad_bodies_and_read_only_tokens_and_survives_a_failed_batch(
        buyer, provider, monkeypatch):
    from exchange import fastpath
    from exchange.models import Order

    instrument, runner, buyer_api, seller_api = await market_setup(buyer, provider)
    order = {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1}
    status, body = await post("/api/v1/orders/", b"{not json", buyer_api.raw_token)
    assert status == 400 and body["code"] == "invalid"
    read_only = await sync_to_async(token_client)(buyer, scopes=("read",))
    status, body = await post("/api/v1/orders/", order, read_only.raw_token)
    assert status == 403 and body["code"] == "scope_missing"

    monkeypatch.setattr(fastpath, "PLACE_SQL", "SELECT * FROM cx_no_such_function(%s)")
    monkeypatch.setattr(fastpath, "place_params", lambda requests: [[r.qty for r in requests]])
    status, body = await post("/api/v1/orders/", {**order, "client_order_id": "failed"}, buyer_api.raw_token)
    assert status == 500 and body["code"] == "server_error" and "nothing was placed" in body["detail"]
    monkeypatch.undo()
    assert not await Order.objects.aexists()

    # The batcher goes on; orders sent together share batches and each gets its own order.
    results = await asyncio.gather(*(post("/api/v1/orders/", {**order, "client_order_id": f"together-{n}"},
                                          buyer_api.raw_token) for n in range(20)))
    assert [status for status, _ in results] == [201] * 20
    assert len({body["id"] for _, body in results}) == 20
    assert await Order.objects.acount() == 20
    assert await sync_to_async(ledger_is_balanced)()
