"""The one place events leave the system: after commit, to the channel layer.

Every event is a JSON-ready dict with a ``type``. Consumers only relay them.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def organisation_group(organisation_id: int) -> str:
    return f"org.{organisation_id}"


def publish(group: str, events: dict | list[dict]) -> None:
    """Send now (the caller has committed, or there is nothing to commit)."""
    events = events if isinstance(events, list) else [events]
    async_to_sync(get_channel_layer().group_send)(group, {"type": "relay", "events": events})


def publish_on_commit(group: str, events: dict | list[dict]) -> None:
    """Send once the surrounding transaction commits; never for a rolled-back change."""
    transaction.on_commit(lambda: publish(group, events))
