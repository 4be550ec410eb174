"""The one place events leave the system: after commit, to the channel layer.

Every event is a JSON-ready dict with a ``type``. Consumers only relay them.
"""

from __future__ import annotations

import asyncio
import threading

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

    asyncio.run_coroutine_threadsafe(send_all(), _publisher_loop()).result()


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """One event loop, on its own thread, for the process's batch publishing.

    The channel layer keeps its Redis connections per event loop; ``async_to_sync`` from a
    plain thread makes a new loop per call, so every batch connected again (about ten
    times the cost of the sends themselves).
    """
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="event-publisher", daemon=True).start()
        return _loop


def publish_on_commit(group: str, events: dict | list[dict]) -> None:
    """Send once the surrounding transaction commits; never for a rolled-back change."""
    transaction.on_commit(lambda: publish(group, events))
