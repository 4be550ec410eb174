"""Per-process fan-out of public market data to WebSocket subscribers.

Each web process holds one Redis subscription for all instruments and writes every
message, already serialised by the engine runner, to its own subscribed sockets. The
WebSocket frame is built once per message per process and written straight to each
socket that is taking data (on uvicorn's sans-I/O WebSocket protocol; elsewhere through
the ASGI ``send``). Each subscriber has a latest-only slot: a socket that stops reading
holds up nothing but itself, and when it reads again it gets the newest message — the gap
in ``seq`` tells the client to fetch a snapshot. (STACK.md measures why: the stock
Channels group path falls behind at 10 messages/s with 1,000 subscribers.)
"""

from __future__ import annotations

import asyncio
import logging
import struct
from functools import cached_property

import redis.asyncio as aioredis
from django.conf import settings
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from exchange.market_data import CHANNEL_PREFIX, channel_name

log = logging.getLogger("exchange.fanout")


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked WebSocket text frame (RFC 6455 §5.2), as a server sends it.

    Uncompressed (RSV1 clear), which RFC 7692 allows on a connection that negotiated
    permessage-deflate, so the same bytes suit every socket.
    """
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class Message:
    """One message from Redis, in the forms the sockets need, each made once per process."""

    def __init__(self, data: bytes):
        self.data = data

    @cached_property
    def frame(self) -> bytes:
        return text_frame(self.data)

    @cached_property
    def text(self) -> str:
        return self.data.decode()


def direct_connection(send) -> WebSocketsSansIOProtocol | None:
    """The uvicorn connection behind an ASGI ``send``, if frames can be written to it.

    Its attributes are uvicorn's own, not ASGI's (uvicorn is pinned in requirements.txt;
    tests/exchange/test_fanout.py runs the real server). Writing the ready frame there
    skips, per socket, the consumer's send, the text's encoding and the frame's assembly:
    about half the web process's CPU per delivery.
    """
    connection = getattr(send, "__self__", None)
    return connection if isinstance(connection, WebSocketsSansIOProtocol) else None


class Subscriber:
    """One socket and its queue of depth one.

    ``send`` is an async callable taking the message text (the ASGI path); ``connection``,
    if given, is the socket's uvicorn protocol, to which ready frames are written while the
    socket takes data and nothing is queued.
    """

    __slots__ = ("send", "connection", "latest", "task", "dropped")

    def __init__(self, send, connection: WebSocketsSansIOProtocol | None = None):
        self.send = send
        self.connection = connection
        self.latest: Message | None = None
        self.task: asyncio.Task | None = None
        self.dropped = 0

    def offer(self, message: Message) -> None:
        if self.task is None:
            if self._write_now(message):
                return
            self.task = asyncio.create_task(self._drain())
        elif self.latest is not None:
            self.dropped += 1
        self.latest = message

    def _write_now(self, message: Message) -> bool:
        connection = self.connection
        # `writable` is clear while uvicorn's transport is above its high-water mark: that
        # socket is not reading, and waits in _drain for the newest message only.
        if (connection is None or not connection.writable.is_set() or connection.close_sent
                or connection.conn.state is not State.OPEN or connection.transport.is_closing()):
            return False
        connection.transport.write(message.frame)
        return True

    async def _drain(self) -> None:
        while self.latest is not None:
            message, self.latest = self.latest, None
            try:
                await self.send(message.text)
            except Exception:  # the socket is gone; its consumer unsubscribes on disconnect
                return
        self.task = None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()


class MarketDataHub:
    def __init__(self):
        self.subscribers: dict[int, set[Subscriber]] = {}
        self._reader: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listening: asyncio.Event | None = None

    def _ensure_reader(self) -> None:
        loop = asyncio.get_running_loop()
        if self._reader is None or self._reader.done() or self._loop is not loop:
            self._loop = loop
            self._listening = asyncio.Event()
            self._reader = loop.create_task(self._read())

    async def listening(self) -> None:
        """Wait until the Redis subscription is active, so nothing published after is missed."""
        self._ensure_reader()
        await self._listening.wait()

    async def _read(self) -> None:
        pattern = channel_name(0)[: -len("0")] + "*"
        prefix_len = len(pattern) - 1
        while True:
            # No read timeout: a quiet market is not a dead connection (keepalive detects those).
            client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=None, socket_keepalive=True)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.psubscribe(pattern)
                self._listening.set()
                async for message in pubsub.listen():
                    if message["type"] != "pmessage":
                        continue
                    instrument_id = int(message["channel"][prefix_len:])
                    subscribers = self.subscribers.get(instrument_id)
                    if subscribers:
                        ready = Message(message["data"])
                        for subscriber in subscribers:
                            subscriber.offer(ready)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("market-data subscription lost; reconnecting")
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    def subscribe(self, instrument_id: int, send, connection: WebSocketsSansIOProtocol | None = None) -> Subscriber:
        self._ensure_reader()
        subscriber = Subscriber(send, connection)
        self.subscribers.setdefault(instrument_id, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, instrument_id: int, subscriber: Subscriber) -> None:
        subscriber.close()
        group = self.subscribers.get(instrument_id)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self.subscribers[instrument_id]


hub = MarketDataHub()

__all__ = ["CHANNEL_PREFIX", "MarketDataHub", "Message", "Subscriber", "direct_connection", "hub", "text_frame"]
