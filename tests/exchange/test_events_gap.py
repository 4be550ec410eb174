"""The private stream's gap recovery, over the real channel layer: events the engine could not publish
are lost, the next one's ``seq`` shows the gap, and re-reading ``/api/v1/orders/?status=live`` and
``/api/v1/fills/`` (as the README says) gives the state the lost events carried."""

import pytest
from asgiref.sync import sync_to_async

from exchange.models import Order, Trade
from tests.exchange.conftest import drain
from tests.exchange.test_live import connect, market_setup

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.usefixtures("asgi_closed")]


def redis_away(writes):
    raise ConnectionError("Redis is away")


async def test_a_client_that_missed_events_sees_the_gap_and_recovers_by_re_reading(buyer, provider):
    instrument, runner, buyer_api, seller_api = await market_setup(buyer, provider)
    stream = await connect(f"/ws/events/?token={buyer_api.raw_token}")
    assert (await stream.receive_json_from(timeout=3))["type"] == "hello"
    place = sync_to_async(lambda api, body: api.post("/api/v1/orders/", {"instrument": instrument.code, **body},
                                                     format="json"))

    first = await place(buyer_api, {"side": "buy", "price": "20.00", "qty": 10})
    assert first.status_code == 201
    await sync_to_async(drain)(runner)
    opened = await stream.receive_json_from(timeout=5)
    assert (opened["type"], opened["order_id"], opened["status"], opened["seq"]) == ("order", first.data["id"], "open", 1)
    last_seen = opened["seq"]

    # The batch that fills part of the bid commits, but its events never reach the channel layer.
    assert (await place(seller_api, {"side": "sell", "price": "20.00", "qty": 4})).status_code == 201
    runner._publish, publish = redis_away, runner._publish
    await sync_to_async(drain)(runner)
    runner._publish = publish
    assert await stream.receive_nothing(timeout=0.3)

    second = await place(buyer_api, {"side": "buy", "price": "19.00", "qty": 1})
    await sync_to_async(drain)(runner)
    event = await stream.receive_json_from(timeout=5)
    assert (event["order_id"], event["status"]) == (second.data["id"], "open")
    assert event["seq"] > last_seen + 1, "the lost trade and order events must leave a gap in seq"
    assert event["seq"] == last_seen + 3  # exactly the two lost: the fill and the order's new state

    # Recovery: the live orders and the fills, read again, hold everything the lost events said.
    live = (await sync_to_async(buyer_api.get)("/api/v1/orders/?status=live")).data["results"]
    by_id = {o["id"]: o for o in live}
    assert set(by_id) == {first.data["id"], second.data["id"]}
    assert (by_id[first.data["id"]]["status"], by_id[first.data["id"]]["filled"],
            by_id[first.data["id"]]["remaining"]) == ("partially_filled", 4, 6)
    fills = (await sync_to_async(buyer_api.get)("/api/v1/fills/")).data["results"]
    trade = await Trade.objects.aget()
    assert [(f["id"], f["side"], f["price"], f["qty"], f["buy_order_id"]) for f in fills] == [
        (trade.id, "buy", "20.00", 4, first.data["id"])]
    stored = await Order.objects.aget(pk=first.data["id"])
    assert (stored.filled, stored.remaining) == (4, 6)

    # From there on the stream is gapless again.
    assert (await place(seller_api, {"side": "sell", "price": "20.00", "qty": 1})).status_code == 201
    await sync_to_async(drain)(runner)
    after = [await stream.receive_json_from(timeout=5) for _ in range(2)]
    assert [m["seq"] for m in after] == [event["seq"] + 1, event["seq"] + 2]
    assert [m["type"] for m in after] == ["trade", "order"]
    await stream.disconnect()
