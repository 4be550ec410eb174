"""The provenance chain: one exchange-wide, append-only, hash-linked log."""

from __future__ import annotations

import json

from django.db import connection, transaction
from django.utils import timezone

from marketplace.models import ZERO_HASH, ComputeAsset, DeviceType, ProvenanceEvent
from marketplace.signing import jsonable, provenance_hash

# pg_advisory_xact_lock key of the provenance chain head ("mktprov" in ASCII).
PROVENANCE_LOCK = 0x6D6B7470726F76


def provenance_append(
    *, asset: ComputeAsset | None, kind: str, payload: dict, device_type: DeviceType | None = None
) -> ProvenanceEvent:
    """Append one event to the exchange's single provenance chain.

    A transaction-scoped advisory lock serialises appends, so two writers never read the
    same head and fork the chain; it is held until the caller's transaction ends, so keep
    appends near the end of long transactions. The unique ``seq`` is the backstop.
    """
    with transaction.atomic():
        (link,) = _next_links([(asset.id if asset is not None else None, kind, payload,
                                device_type.id if device_type is not None else None)])
        return ProvenanceEvent.objects.create(**link)


def provenance_append_many(*, events: list[tuple[int | None, str, dict, int | None]]) -> None:
    """Append (asset id, kind, payload, device type id) events in this order, locked as
    ``provenance_append`` does, in one COPY (the engine appends one per asset sold in a batch)."""
    if not events:
        return
    with transaction.atomic():
        links = _next_links(events)
        with connection.cursor() as cursor:
            provenance_copy(cursor, links)


def provenance_copy(cursor, links: list[dict]) -> None:
    """COPY the links ``provenance_links`` made, on ``cursor`` (in the transaction that holds the lock)."""
    with cursor.copy("COPY marketplace_provenanceevent (seq, kind, asset_id, device_type_id, payload, "
                     "recorded_at, prev_hash, hash) FROM STDIN") as copy:
        for link in links:
            copy.write_row((link["seq"], link["kind"], link["asset_id"], link["device_type_id"],
                            json.dumps(link["payload"], separators=(",", ":")), link["recorded_at"],
                            link["prev_hash"], link["hash"]))


def provenance_head_locked() -> tuple[int, str]:
    """Take the chain's lock (to the end of the caller's transaction) and read its head:
    (the next link's seq, the hash it follows)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PROVENANCE_LOCK])
    head = ProvenanceEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    return (head[0] + 1, head[1]) if head else (1, ZERO_HASH)


def _next_links(events: list[tuple[int | None, str, dict, int | None]]) -> list[dict]:
    """The fields of the next links of the chain, one per event; call inside a transaction."""
    for _, kind, _, _ in events:
        if kind not in ProvenanceEvent.Kind.values:
            raise ValueError(f"unknown provenance event kind {kind!r}")
    return provenance_links(events, head=provenance_head_locked(), recorded_at=timezone.now())


def provenance_links(events: list[tuple[int | None, str, dict, int | None]], *, head: tuple[int, str],
                     recorded_at) -> list[dict]:
    """The links that follow ``head`` (from ``provenance_head_locked``, lock still held), one per event."""
    seq, prev_hash = head
    links = []
    for asset_id, kind, payload, device_type_id in events:
        if kind not in ProvenanceEvent.Kind.values:
            raise ValueError(f"unknown provenance event kind {kind!r}")
        payload = jsonable(payload)
        event_hash = provenance_hash(seq=seq, kind=kind, asset_id=asset_id, device_type_id=device_type_id,
                                     payload=payload, recorded_at=recorded_at, prev_hash=prev_hash)
        links.append(dict(seq=seq, kind=kind, asset_id=asset_id, device_type_id=device_type_id, payload=payload,
                          recorded_at=recorded_at, prev_hash=prev_hash, hash=event_hash))
        seq, prev_hash = seq + 1, event_hash
    return links
