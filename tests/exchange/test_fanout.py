"""Market-data fan-out through a real uvicorn server: frames written straight to the sockets."""

import asyncio
import json
import socket

import pytest
import pytest_asyncio
import uvicorn
import websockets
from asgiref.sync import sync_to_async
from django.db import connections
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from exchange.asgi import application
from exchange.fanout import hub, text_frame
from exchange.market_data import publish_raw
from tests.exchange.conftest import make_instrument

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
ORIGIN = "http://127.0.0.1"


@pytest_asyncio.fixture(autouse=True)
async def _close_connections():
    yield
    await sync_to_async(connections.close_all)()


@pytest_asyncio.fixture
async def server():
    """The project's ASGI application on uvicorn's sans-I/O WebSocket protocol, as exchange.serve runs it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(application, ws="websockets-sansio", lifespan="off", log_level="warning")
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve(sockets=[sock]))
    while not running.started:
        await asyncio.sleep(0.01)
    yield f"ws://127.0.0.1:{sock.getsockname()[1]}"
    running.should_exit = True
    await task


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    return done.value.value


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
async def test_a_ready_frame_is_one_final_text_frame_of_any_length(size):
    payload = b"x" * size
    frame = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and not frame.rsv1 and frame.data == payload


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_updates_are_written_straight_to_the_socket_in_order(server, compression):
    instrument = await sync_to_async(make_instrument)()
    async with websockets.connect(f"{server}/ws/market/", origin=ORIGIN, compression=compression) as ws:
        await ws.send(json.dumps({"action": "subscribe", "instrument": instrument.code}))
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert snapshot["type"] == "md.snapshot"
        (subscriber,) = hub.subscribers[instrument.id]
        assert subscriber.connection is not None  # the direct path, not the ASGI send
        for seq in range(snapshot["seq"] + 1, snapshot["seq"] + 4):
            message = {"type": "md.update", "instrument": instrument.code, "seq": seq, "trades": [], "note": "价" * seq}
            await sync_to_async(publish_raw)(instrument.id, json.dumps(message, ensure_ascii=False))
        received = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
    assert [m["seq"] for m in received] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 4))
    assert received[-1]["note"] == "价" * received[-1]["seq"] and "published_at" in received[-1]
    await asyncio.sleep(0.1)  # the server sees the close and unsubscribes
    assert instrument.id not in hub.subscribers


async def test_a_socket_that_stops_reading_gets_only_the_newest_and_holds_up_no_one(server):
    instrument = await sync_to_async(make_instrument)()
    url, subscribe = f"{server}/ws/market/", json.dumps({"action": "subscribe", "instrument": instrument.code})
    # max_queue=1: the stalled client stops reading its socket after one message.
    async with (websockets.connect(url, origin=ORIGIN, compression=None, max_queue=1) as stalled,
                websockets.connect(url, origin=ORIGIN, compression=None) as reader):
        for ws in (stalled, reader):
            await ws.send(subscribe)
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))["seq"]
        # Enough bytes to fill the kernel's socket buffers and uvicorn's write buffer; each
        # one goes out when the reader has the one before.
        last = first + 200
        for seq in range(first + 1, last + 1):
            await sync_to_async(publish_raw)(instrument.id, json.dumps({"type": "md.update", "seq": seq, "pad": "x" * 100_000}))
            assert json.loads(await asyncio.wait_for(reader.recv(), 5))["seq"] == seq
        assert max(subscriber.dropped for subscriber in hub.subscribers[instrument.id]) > 0
        stalled_seqs = []
        while not stalled_seqs or stalled_seqs[-1] != last:
            stalled_seqs.append(json.loads(await asyncio.wait_for(stalled.recv(), 10))["seq"])
    assert stalled_seqs == sorted(stalled_seqs) and len(stalled_seqs) < last - first  # a gap it can see
