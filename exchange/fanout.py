"""Per-process fan-out of public market data to WebSocket subscribers.

Each web process holds one Redis subscription for all instruments and writes every
message, already serialised by the engine runner, to its own subscribed sockets. Each
subscriber has a latest-only slot and its own writer task: a socket that stops reading
holds up nothing but itself, and when it reads again it gets the newest message — the
gap in ``seq`` tells the client to fetch a snapshot. (STACK.md measures why: the stock
Channels group path falls behind at 10 messages/s with 1,000 subscribers.)
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from django.conf import settings

from exchange.market_data import CHANNEL_PREFIX, channel_name

log = logging.getLogger("exchange.fanout")


class Subscriber:
    """One socket's queue of depth one."""

    __slots__ = ("send", "latest", "ready", "task", "dropped")

    def __init__(self, send):
        self.send = send
        self.latest: str | None = None
        self.ready = asyncio.Event()
        self.dropped = 0
        self.task = asyncio.create_task(self._writer())

    def offer(self, payload: str) -> None:
        if self.latest is not None:
            self.dropped += 1
        self.latest = payload
        self.ready.set()

    async def _writer(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            payload, self.latest = self.latest, None
            if payload is not None:
                try:
                    await self.send(payload)
                except Exception:  # the socket is gone; its consumer unsubscribes on disconnect
                    return

    def close(self) -> None:
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
                        payload = message["data"].decode()
                        for subscriber in subscribers:
                            subscriber.offer(payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("market-data subscription lost; reconnecting")
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    def subscribe(self, instrument_id: int, send) -> Subscriber:
        self._ensure_reader()
        subscriber = Subscriber(send)
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

__all__ = ["CHANNEL_PREFIX", "MarketDataHub", "Subscriber", "hub"]
