"""The one place events leave the system: after commit, to the channel layer.

Every event is a JSON-ready dict with a ``type``. Consumers only relay them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction


def organisation_group(organisation_id: int) -> str:
    return f"org.{organisation_id}"


def publish(group: str, events: dict | list[dict]) -> None:
    """Send now (the caller has committed, or there is nothing to commit)."""
    events = events if isinstance(events, list) else [events]
    async_to_sync(get_channel_layer().group_send)(group, {"type": "relay", "events": events})


def publish_many(events_by_group: dict[str, list[dict]], *, after: concurrent.futures.Future | None = None,
                 wait: bool = True) -> concurrent.futures.Future | None:
    """Send to many groups at once (the engine's per-batch fan-out to organisations).

    ``wait=False`` returns at once with the sending's future; ``after`` (such a future) is
    finished first, so batches published one after another reach each group in order."""
    if not events_by_group:
        return after
    layer = get_channel_layer()

    async def send_all():
        if after is not None:
            # Its order, not its fate: a failed send was reported to whoever waited for it.
            await asyncio.wait([asyncio.wrap_future(after)])
        await asyncio.gather(*(layer.group_send(group, {"type": "relay", "events": events})
                               for group, events in events_by_group.items()))

    future = asyncio.run_coroutine_threadsafe(send_all(), _publisher_loop())
    if wait:
        future.result()
        return None
    return future


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


def private_events_number(events: list[tuple[int, dict]], *, cursor=None) -> None:
    """Give each organisation's events (``(organisation id, event)``, in order) consecutive
    ``seq`` numbers, kept in the store in the caller's transaction, so a client can tell it
    missed one. Every writer of private events (the engine, settlement) numbers through here;
    ``cursor``: one of that transaction's connection, if not this thread's."""
    counts: dict[int, int] = {}
    for org_id, _ in events:
        counts[org_id] = counts.get(org_id, 0) + 1
    if not counts:
        return
    orgs = sorted(counts)
    with (connection.cursor() if cursor is None else contextlib.nullcontext(cursor)) as cursor:
        cursor.execute(
            "INSERT INTO exchange_eventsequence AS e (organisation_id, seq) "
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[]) "
            "ON CONFLICT (organisation_id) DO UPDATE SET seq = e.seq + EXCLUDED.seq "
            "RETURNING organisation_id, seq",
            [orgs, [counts[o] for o in orgs]],
        )
        next_seq = {org: last - counts[org] + 1 for org, last in cursor.fetchall()}
    for org_id, event in events:
        event["seq"] = next_seq[org_id]
        next_seq[org_id] += 1


def private_events_publish(events: list[tuple[int, dict]], **options) -> concurrent.futures.Future | None:
    """One channel-layer message per organisation, all in one event-loop hop (``options``: see ``publish_many``)."""
    by_org: dict[int, list[dict]] = {}
    for org_id, event in events:
        by_org.setdefault(org_id, []).append(event)
    return publish_many({organisation_group(org_id): batch for org_id, batch in by_org.items()}, **options)


def private_events_send(events: list[tuple[int, dict]]) -> None:
    """Number ``events`` now and publish them once the surrounding transaction commits."""
    if not events:
        return
    private_events_number(events)
    transaction.on_commit(lambda: private_events_publish(events), robust=True)


def publish_on_commit(group: str, events: dict | list[dict]) -> None:
    """Send once the surrounding transaction commits; never for a rolled-back change."""
    transaction.on_commit(lambda: publish(group, events))
