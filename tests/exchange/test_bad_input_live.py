"""Bad input on the fast order route and over WebSocket commands: a 4xx (or an error reply on
a socket that stays open), never a 500 or a dropped socket, and nothing written."""

import json

import pytest
from asgiref.sync import sync_to_async

from exchange import ledger
from exchange.models import FeeTier, InboxCommand, Journal, Order
from tests.conftest import token_client
from tests.exchange.conftest import make_instrument
from tests.exchange.test_bad_input import AMEND_VALUES, CASES, order
from tests.exchange.test_live import connect, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.usefixtures("asgi_closed")]


@sync_to_async
def setup(buyer):
    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    instrument = make_instrument()
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    return instrument, token_client(buyer).raw_token


@sync_to_async
def written() -> tuple:
    return Order.objects.count(), InboxCommand.objects.count(), Journal.objects.count()


async def socket_answers(ws, request_id) -> dict:
    """The socket is still open and answering: a cancel of an order that does not exist."""
    await ws.send_json_to({"action": "cancel", "order_id": 10**6, "request_id": request_id})
    while (reply := await ws.receive_json_from(timeout=5)).get("request_id") != request_id:
        assert "request_id" not in reply, reply  # events of the organisation may come first
    assert reply["code"] == "not_found", reply
    return reply


@pytest.mark.parametrize("case", CASES)
async def test_a_bad_order_on_the_fast_route_and_over_websocket_is_refused_and_writes_nothing(buyer, case):
    body, field = CASES[case]
    instrument, token = await setup(buyer)
    text = body(instrument.code)
    before = await written()

    status, answer = await post("/api/v1/orders/", text.encode(), token)
    assert status == 400 and answer["code"] == "invalid", (status, answer)
    assert field is None or any(key.split(".")[-1] == field for key in answer["fields"]), answer

    status, answer = await post("/api/v1/orders/batch/", f'{{"orders": [{text}]}}'.encode(), token)
    if status == 200:
        (result,) = answer["results"]
        assert result["status"] == "rejected" and field in result["fields"], result
    else:
        assert status == 400 and answer["code"] == "invalid", (status, answer)

    ws = await connect(f"/ws/events/?token={token}")
    assert (await ws.receive_json_from(timeout=5))["type"] == "hello"
    await ws.send_to(text_data='{"action": "place", "request_id": 7, ' + text[1:])
    reply = await ws.receive_json_from(timeout=5)
    assert reply["type"] == "error" and reply["code"] == "invalid", reply
    assert field is None or any(key.split(".")[-1] == field for key in reply["fields"]), reply
    await socket_answers(ws, 8)
    await ws.disconnect()

    assert await written() == before


@pytest.mark.parametrize("frame", [
    {"text_data": "{not json"},
    {"text_data": " "},
    {"text_data": "[" * 20_000 + "]" * 20_000},
    {"text_data": '{"action": "place", "x": NaN}'},
    {"text_data": '{"action": "place\\u0000"}'},
    {"text_data": "[1, 2]"},
    {"text_data": '{"action": "cancel", "order_id": 99999999999999999999999}'},
    {"text_data": '{"action": "cancel", "order_id": "1"}'},
    {"text_data": '{"action": {}}'},
    {"bytes_data": b'{"action": "cancel", "order_id": 1}'},
    {"bytes_data": b"\xff\xfe"},
], ids=lambda frame: next(iter(frame.values()))[:30].__repr__())
async def test_a_bad_frame_gets_an_error_reply_and_the_socket_stays_open(buyer, frame):
    instrument, token = await setup(buyer)
    ws = await connect(f"/ws/events/?token={token}")
    assert (await ws.receive_json_from(timeout=5))["type"] == "hello"
    await ws.send_to(**frame)
    reply = await ws.receive_json_from(timeout=5)
    assert reply["type"] == "error" and reply["code"] in ("invalid", "not_found"), reply
    await socket_answers(ws, 9)
    await ws.disconnect()


async def test_a_bad_amendment_over_websocket_is_refused_and_writes_nothing(buyer):
    instrument, token = await setup(buyer)
    ws = await connect(f"/ws/events/?token={token}")
    assert (await ws.receive_json_from(timeout=5))["type"] == "hello"
    await ws.send_json_to({"action": "place", "request_id": 1, **order(instrument.code, qty=10)})
    placed = await ws.receive_json_from(timeout=5)
    assert placed["type"] == "ack", placed
    before = await written()
    for n, changes in enumerate(AMEND_VALUES, start=2):
        await ws.send_to(text_data=json.dumps({"action": "amend", "order_id": placed["order"]["id"], "request_id": n,
                                               **changes}))
        reply = await ws.receive_json_from(timeout=5)
        assert reply["type"] == "error" and reply["code"] == "invalid" and reply["request_id"] == n, (changes, reply)
    await socket_answers(ws, 100)
    await ws.disconnect()
    assert await written() == before


async def test_the_market_data_socket_answers_bad_frames_and_stays_open(buyer):
    instrument, token = await setup(buyer)
    ws = await connect("/ws/market/")
    for frame in ({"text_data": "{not json"}, {"text_data": '{"action": "subscribe", "instrument": "A\\u0000"}'},
                  {"text_data": "[" * 20_000 + "]" * 20_000}, {"bytes_data": b"\x00"}):
        await ws.send_to(**frame)
        reply = await ws.receive_json_from(timeout=5)
        assert reply["type"] == "error", (frame, reply)
    await ws.send_json_to({"action": "subscribe", "instrument": instrument.code})
    assert (await ws.receive_json_from(timeout=5))["type"] == "md.snapshot"
    await ws.disconnect()
