"""The one place events leave the system: after commit, to the channel layer.

Every event is a JSON-ready dict with a ``type``. Consumers only relay them.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def organisation_group(organisation_id: int) -> str:
    return f"org.{organisation_id}"


def publish(group: str, events: dict | list[dict]) -> None:
    """Send now (the caller has committed, or there is nothing to commit)."""
    events = events if isinstance(events, list) else [events]
    async_to_sync(get_channel_layer().group_send)(group, {"type": "relay", "events": events})


def publish_many(events_by_group: dict[str, list[dict]]) -> None:
    """Send to many groups at once (the engine's per-batch fan-out to organisations)."""
    if not events_by_group:
        return
    layer = get_channel_layer()

    async def send_all():
        await asyncio.gather(*(layer.group_send(group, {"type": "relay", "events": events})
                               for group, events in events_by_group.items()))

    async_to_sync(send_all)()


def publish_on_commit(group: str, events: dict | list[dict]) -> None:
    """Send once the surrounding transaction commits; never for a rolled-back change."""
    transaction.on_commit(lambda: publish(group, events))
