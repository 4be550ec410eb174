"""Compute assets: registration, details, owner shares over time, inventory."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Organisation
from exchange.errors import AppError
from marketplace.models import AssetOwnership, Cluster, ComputeAsset, DeviceType, InventoryItem, ProvenanceEvent
from marketplace.selectors import peak_devices_listed
from marketplace.services.common import PRICE_PLACES, UNPROCESSABLE, checked_decimal, lock_asset
from marketplace.services.provenance import provenance_append

TOTAL_SHARE_BP = 10_000


def _owner_rows(owners: list[tuple[Organisation, int]]) -> list[dict]:
    return [{"organisation": org.id, "name": org.name, "share_bp": bp} for org, bp in owners]


def _check_shares(owners: list[tuple[Organisation, int]]) -> None:
    if not owners:
        raise AppError("shares_invalid", "An asset needs at least one owner.", fields={"owners": "At least one owner."})
    seen = set()
    for index, (organisation, share_bp) in enumerate(owners):
        if organisation.id in seen:
            raise AppError("shares_invalid", f"{organisation.name} is listed twice.",
                           fields={f"owners.{index}.organisation": "Listed twice."})
        seen.add(organisation.id)
        if not isinstance(share_bp, int) or not 1 <= share_bp <= TOTAL_SHARE_BP:
            raise AppError("shares_invalid", "Each share is 1 to 10000 basis points.",
                           fields={f"owners.{index}.share_bp": "1 to 10000."})
    total = sum(bp for _, bp in owners)
    if total != TOTAL_SHARE_BP:
        raise AppError(
            "shares_invalid",
            f"Owner shares add up to {total} basis points; they must add up to exactly 10000 (100 %).",
            fields={"owners": f"Total {total}, not 10000."},
        )


def _check_asset_values(values: dict) -> dict:
    out = {}
    if "name" in values:
        name = (values["name"] or "").strip()
        if not name or len(name) > 200:
            raise AppError("invalid", "An asset needs a name (up to 200 characters).", fields={"name": "Required."})
        out["name"] = name
    for field in ("address", "description"):
        if field in values:
            out[field] = (values[field] or "").strip()
    if "pue" in values:
        out["pue"] = checked_decimal(values["pue"], field="pue", places=PRICE_PLACES, low=Decimal("1.00"), high=Decimal("3.00"))
    if "green_share" in values:
        out["green_share"] = checked_decimal(values["green_share"], field="green_share", places=PRICE_PLACES,
                                      low=Decimal(0), high=Decimal(100))
    return out


@transaction.atomic
def asset_register(
    *, provider: Organisation, name: str, cluster: Cluster, pue, green_share, address: str = "",
    description: str = "", inventory: list[tuple[DeviceType, int]] = (),
    owners: list[tuple[Organisation, int]] | None = None,
) -> ComputeAsset:
    """A new asset with its first owners (default: the provider alone) and inventory."""
    values = _check_asset_values({"name": name, "pue": pue, "green_share": green_share,
                                  "address": address, "description": description})
    owners = owners if owners is not None else [(provider, TOTAL_SHARE_BP)]
    _check_shares(owners)
    seen = set()
    for index, (device_type, count) in enumerate(inventory):
        if device_type.id in seen:
            raise AppError("invalid", f"{device_type} appears twice in the inventory.",
                           fields={f"inventory.{index}.device_type": "Listed twice."})
        seen.add(device_type.id)
        if not isinstance(count, int) or count < 1:
            raise AppError("invalid", "Inventory counts are positive whole numbers.",
                           fields={f"inventory.{index}.count": "Positive integer."})
    if ComputeAsset.objects.filter(provider=provider, name__iexact=values["name"]).exists():
        raise AppError("asset_exists", f"You already have an asset named {values['name']!r}.",
                       fields={"name": "Already used."}, status_code=409)
    asset = ComputeAsset.objects.create(provider=provider, hub=cluster.hub, cluster=cluster, **values)
    now = timezone.now()
    AssetOwnership.objects.bulk_create(
        AssetOwnership(asset=asset, organisation=org, share_bp=bp, effective_from=now) for org, bp in owners
    )
    InventoryItem.objects.bulk_create(
        InventoryItem(asset=asset, device_type=device_type, count=count) for device_type, count in inventory
    )
    provenance_append(
        asset=asset, kind=ProvenanceEvent.Kind.ASSET_REGISTERED,
        payload={
            "provider": provider.id, "name": asset.name, "hub": cluster.hub.code, "cluster": cluster.code,
            "address": asset.address, "description": asset.description, "pue": asset.pue,
            "green_share": asset.green_share, "owners": _owner_rows(owners), "owners_effective_from": now,
            "inventory": [{"device_type": dt.hardware_facts(), "count": count} for dt, count in inventory],
        },
    )
    return asset


@transaction.atomic
def asset_update(*, asset: ComputeAsset, **changes) -> ComputeAsset:
    """Name, address, description, PUE and green share. Hub and cluster are fixed at registration."""
    values = _check_asset_values(changes)
    asset = lock_asset(asset)
    if "name" in values and ComputeAsset.objects.filter(
        provider_id=asset.provider_id, name__iexact=values["name"]
    ).exclude(pk=asset.pk).exists():
        raise AppError("asset_exists", f"You already have an asset named {values['name']!r}.",
                       fields={"name": "Already used."}, status_code=409)
    diff = {f: [getattr(asset, f), v] for f, v in values.items() if getattr(asset, f) != v}
    if diff:
        for field, (_, new) in diff.items():
            setattr(asset, field, new)
        asset.save()
        provenance_append(asset=asset, kind=ProvenanceEvent.Kind.ASSET_CHANGED, payload={"changes": diff})
    return asset


@transaction.atomic
def asset_owners_set(
    *, asset: ComputeAsset, owners: list[tuple[Organisation, int]], effective_from: datetime | None = None
) -> list[AssetOwnership]:
    """A new share set from ``effective_from`` (default now). Earlier sets are never changed."""
    now = timezone.now()
    effective_from = effective_from or now
    if effective_from < now:
        raise AppError("effective_in_past", "A change of owners takes effect now or later; the past is not rewritten.",
                       fields={"effective_from": "Now or later."})
    _check_shares(owners)
    asset = lock_asset(asset)
    latest = AssetOwnership.objects.filter(asset=asset).order_by("-effective_from").first()
    if latest is not None and effective_from <= latest.effective_from:
        raise AppError(
            "effective_not_after_latest",
            f"A share set already takes effect at {latest.effective_from.isoformat()}; a new one must start later.",
            fields={"effective_from": "After the latest share set."},
        )
    previous = list(AssetOwnership.objects.filter(asset=asset, effective_from=latest.effective_from).select_related(
        "organisation")) if latest else []
    rows = AssetOwnership.objects.bulk_create(
        AssetOwnership(asset=asset, organisation=org, share_bp=bp, effective_from=effective_from) for org, bp in owners
    )
    provenance_append(
        asset=asset, kind=ProvenanceEvent.Kind.OWNERS_CHANGED,
        payload={"effective_from": effective_from, "owners": _owner_rows(owners),
                 "previous": _owner_rows([(r.organisation, r.share_bp) for r in previous])},
    )
    return rows


@transaction.atomic
def inventory_set(*, asset: ComputeAsset, device_type: DeviceType, count: int) -> InventoryItem:
    """Set how many devices of a type the asset holds; never below what active listings use."""
    if not isinstance(count, int) or count < 0:
        raise AppError("invalid", "count is a whole number ≥ 0.", fields={"count": "Whole number ≥ 0."})
    asset = lock_asset(asset)
    item = InventoryItem.objects.filter(asset=asset, device_type=device_type).first()
    previous = item.count if item else 0
    if count < previous:
        listed = peak_devices_listed(asset_id=asset.id, device_type_id=device_type.id, start=timezone.now(), end=None)
        if count < listed:
            raise AppError(
                "inventory_below_listed",
                f"Active listings use up to {listed} {device_type} devices at once; withdraw or shrink them first.",
                fields={"count": f"At least {listed}."}, status_code=UNPROCESSABLE,
            )
    if item is None:
        item = InventoryItem.objects.create(asset=asset, device_type=device_type, count=count)
    elif count != previous:
        item.count = count
        item.save(update_fields=["count", "updated_at"])
    if count != previous:
        provenance_append(asset=asset, kind=ProvenanceEvent.Kind.INVENTORY_CHANGED,
                          payload={"device_type": device_type.hardware_facts(), "count": count, "previous": previous})
    return item
