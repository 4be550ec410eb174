"""A test's own channel on the real channel layer: joined to groups, and what reaches it."""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def listen(groups: list[str]) -> str:
    """A new channel on the real channel layer, in ``groups``."""
    layer = get_channel_layer()

    async def subscribe():
        channel = await layer.new_channel()
        for group in groups:
            await layer.group_add(group, channel)
        return channel

    return async_to_sync(subscribe)()


def received(channel: str, *, first: float = 5.0, quiet: float = 0.3) -> list[dict]:
    """The events that reach ``channel``: waits up to ``first`` s for the first message (every
    caller expects one), then takes more until none comes for ``quiet`` s."""
    layer = get_channel_layer()

    async def drain():
        events, wait = [], first
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=wait)
            except asyncio.TimeoutError:
                return events
            events.extend(message["events"])
            wait = quiet

    return async_to_sync(drain)()
