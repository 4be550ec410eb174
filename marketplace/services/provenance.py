"""The provenance chain: one exchange-wide, append-only, hash-linked log."""

from __future__ import annotations

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
    if kind not in ProvenanceEvent.Kind.values:
        raise ValueError(f"unknown provenance event kind {kind!r}")
    payload = jsonable(payload)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PROVENANCE_LOCK])
        head = ProvenanceEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, ZERO_HASH)
        recorded_at = timezone.now()
        asset_id = asset.id if asset is not None else None
        device_type_id = device_type.id if device_type is not None else None
        return ProvenanceEvent.objects.create(
            seq=seq, kind=kind, asset_id=asset_id, device_type_id=device_type_id, payload=payload,
            recorded_at=recorded_at, prev_hash=prev_hash,
            hash=provenance_hash(seq=seq, kind=kind, asset_id=asset_id, device_type_id=device_type_id,
                                 payload=payload, recorded_at=recorded_at, prev_hash=prev_hash),
        )
