"""The console's live stream: every regulator's open console hears of alerts, halts, KYC
changes and disputes, after the change commits."""

from __future__ import annotations

from django.db import transaction

from exchange.events import publish

CONSOLE_GROUP = "supervision"


def console_publish(event: dict) -> None:
    """Send ``event`` (a dict with a ``type``) to open consoles once the transaction commits."""
    transaction.on_commit(lambda: publish(CONSOLE_GROUP, event), robust=True)
