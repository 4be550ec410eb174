"""Reads for the marketplace: catalogue, attested factors, assets, listings, provenance."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Case, F, IntegerField, Prefetch, Q, QuerySet, Sum, Value, When
from django.utils import timezone

from accounts.models import Organisation
from marketplace.models import (
    ZERO_HASH,
    AssetOwnership,
    Attestation,
    ComputeAsset,
    ComputeClass,
    DeviceType,
    Hub,
    InventoryItem,
    Listing,
    ListingPeriod,
    ProvenanceEvent,
)
from marketplace.signing import canonical_json, provenance_hash, sha256_hex, signature_valid

LATENCY_CITY_MS = 1
LATENCY_REGION_MS = 5
LATENCY_NATIONAL_MS = 20


# ----------------------------------------------------------------------------- catalogue


def city_key(city: str) -> str:
    """``"Gui'an City"``, ``"guian"`` and ``"贵安市"`` compare equal."""
    key = re.sub(r"[\W_]+", "", (city or "").lower())
    for suffix in ("city", "市"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
    return key


def hub_list() -> QuerySet[Hub]:
    return Hub.objects.prefetch_related("clusters")


def hub_latencies(*, city: str, hubs) -> dict[int, int]:
    """Latency circle in ms of each hub from ``city``: 1 same city, 5 same region, else 20.

    ``hubs`` must have their clusters prefetched.
    """
    key = city_key(city)
    out = {}
    for hub in hubs:
        if key and any(key == city_key(c) for cluster in hub.clusters.all() for c in cluster.cities):
            out[hub.id] = LATENCY_CITY_MS
        elif key and any(key == city_key(c) for c in hub.region_cities):
            out[hub.id] = LATENCY_REGION_MS
        else:
            out[hub.id] = LATENCY_NATIONAL_MS
    return out


def compute_class_list() -> QuerySet[ComputeClass]:
    return ComputeClass.objects.all()


# ----------------------------------------------------------------------- attestations


@dataclass(frozen=True)
class AttestationCheck:
    """Whether an attestation can be trusted now, and why not."""

    signature_ok: bool
    hardware_ok: bool
    payload_sha256: str

    @property
    def valid(self) -> bool:
        return self.signature_ok and self.hardware_ok


def attestation_check(attestation: Attestation) -> AttestationCheck:
    """Signature over the stored payload with the attestor's key, and hardware facts unchanged.

    Needs ``key`` and ``device_type`` loaded (select_related) to stay at zero queries.
    """
    payload = attestation.payload
    return AttestationCheck(
        signature_ok=signature_valid(
            public_key_b64=attestation.key.public_key, payload=payload, signature_b64=attestation.signature
        ),
        hardware_ok=payload.get("device_type") == attestation.device_type.hardware_facts(),
        payload_sha256=sha256_hex(canonical_json(payload)),
    )


def attestations_for(*, device_type_ids) -> QuerySet[Attestation]:
    return (
        Attestation.objects.filter(device_type_id__in=device_type_ids)
        .select_related("key", "attestor", "device_type")
        .order_by("-measured_on", "-id")
    )


def attestation_latest_valid(*, device_type: DeviceType, precision: str, attestations=None) -> Attestation | None:
    """The newest valid attestation of ``device_type`` that measured ``precision``.

    ``attestations`` (newest first, with key and device type loaded) avoids a query when
    the caller prefetched them.
    """
    if attestations is None:
        attestations = attestations_for(device_type_ids=[device_type.id])
    for attestation in attestations:
        if attestation.device_type_id != device_type.id or attestation.sustained(precision) is None:
            continue
        if attestation_check(attestation).valid:
            return attestation
    return None


def qualification_gaps(*, device_type: DeviceType, compute_class: ComputeClass) -> dict[str, str]:
    """Which class minimums the device type misses ({} when it meets them all)."""
    gaps = {}
    if device_type.memory_gb < compute_class.min_memory_gb:
        gaps["memory_gb"] = f"{device_type.memory_gb} GB < {compute_class.min_memory_gb} GB"
    if device_type.interconnect_gbps < compute_class.min_interconnect_gbps:
        gaps["interconnect_gbps"] = f"{device_type.interconnect_gbps} Gbit/s < {compute_class.min_interconnect_gbps} Gbit/s"
    return gaps


@dataclass
class ClassFactor:
    compute_class: ComputeClass
    qualifies: bool
    factor: Decimal | None = None
    attestation: Attestation | None = None
    gaps: dict = field(default_factory=dict)


def device_type_factors(*, device_type: DeviceType, classes, attestations) -> list[ClassFactor]:
    """For each class: does the device type qualify, and its attested factor there (none when it does not)."""
    out = []
    own = [a for a in attestations if a.device_type_id == device_type.id]
    for compute_class in classes:
        gaps = qualification_gaps(device_type=device_type, compute_class=compute_class)
        attestation = attestation_latest_valid(
            device_type=device_type, precision=compute_class.reference_precision, attestations=own
        )
        if gaps:
            attestation = None
        factor = attestation.sustained(compute_class.reference_precision) if attestation else None
        out.append(ClassFactor(compute_class, qualifies=attestation is not None, factor=factor,
                               attestation=attestation, gaps=gaps))
    return out


def device_type_list() -> QuerySet[DeviceType]:
    return DeviceType.objects.select_related("registered_by")


# ----------------------------------------------------------------------------- assets


def asset_list(*, provider: Organisation | None = None, hub_code: str | None = None) -> QuerySet[ComputeAsset]:
    assets = ComputeAsset.objects.select_related("hub", "cluster", "provider")
    if provider is not None:
        assets = assets.filter(provider=provider)
    if hub_code:
        assets = assets.filter(hub__code=hub_code)
    return assets


def asset_detail_queryset() -> QuerySet[ComputeAsset]:
    return ComputeAsset.objects.select_related("hub", "cluster", "provider").prefetch_related(
        Prefetch("inventory", queryset=InventoryItem.objects.select_related("device_type").order_by("device_type__vendor", "device_type__model")),
        Prefetch("ownerships", queryset=AssetOwnership.objects.select_related("organisation")),
    )


def owner_sets(*, asset: ComputeAsset) -> list[tuple[datetime, list[AssetOwnership]]]:
    """Every share set of ``asset``, newest first. Uses prefetched ``ownerships`` when present."""
    sets: dict[datetime, list[AssetOwnership]] = {}
    for row in sorted(asset.ownerships.all(), key=lambda r: (r.effective_from, -r.share_bp, r.organisation_id)):
        sets.setdefault(row.effective_from, []).append(row)
    return sorted(sets.items(), key=lambda item: item[0], reverse=True)


def asset_owners_at(*, asset: ComputeAsset, at: datetime | None = None) -> list[AssetOwnership]:
    """The share set in force at ``at`` (default now): who is paid for an hour sold then."""
    at = at or timezone.now()
    effective = (
        AssetOwnership.objects.filter(asset=asset, effective_from__lte=at)
        .order_by("-effective_from")
        .values_list("effective_from", flat=True)
        .first()
    )
    if effective is None:
        return []
    return list(
        AssetOwnership.objects.filter(asset=asset, effective_from=effective)
        .select_related("organisation")
        .order_by("-share_bp", "organisation_id")
    )


def inventory_count(*, asset: ComputeAsset, device_type: DeviceType) -> int:
    item = InventoryItem.objects.filter(asset=asset, device_type=device_type).first()
    return item.count if item else 0


def peak_devices_listed(
    *, asset_id: int, device_type_id: int, start: datetime, end: datetime | None, exclude_listing_id: int | None = None
) -> int:
    """Most devices of one type that active listings of an asset use at any instant of [start, end)."""
    listings = Listing.objects.filter(
        asset_id=asset_id, device_type_id=device_type_id, status=Listing.Status.ACTIVE, window_end__gt=start
    )
    if end is not None:
        listings = listings.filter(window_start__lt=end)
    if exclude_listing_id is not None:
        listings = listings.exclude(pk=exclude_listing_id)
    changes = []
    for window_start, window_end, count in listings.values_list("window_start", "window_end", "device_count"):
        changes.append((max(window_start, start), count))
        changes.append((window_end if end is None else min(window_end, end), -count))
    # Windows are half-open: at an instant where one ends and another starts, the end counts first.
    changes.sort(key=lambda change: (change[0], change[1]))
    peak = running = 0
    for _, delta in changes:
        running += delta
        peak = max(peak, running)
    return peak


# ---------------------------------------------------------------------------- listings


@dataclass(frozen=True)
class ListingFilters:
    compute_class: str | None = None
    hub: str | None = None
    window_from: datetime | None = None
    window_to: datetime | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    pue_max: Decimal | None = None
    green_min: Decimal | None = None
    hub_ids: tuple[int, ...] | None = None
    provider: Organisation | None = None
    include_withdrawn: bool = False


def listing_queryset() -> QuerySet[Listing]:
    return Listing.objects.select_related(
        "asset__hub", "asset__cluster", "asset__provider", "device_type", "compute_class"
    )


def _with_totals(listings: QuerySet[Listing]) -> QuerySet[Listing]:
    return listings.annotate(
        listed_scu_h=Sum("periods__scu_h"), sold_scu_h=Sum("periods__sold_scu_h"),
        available_scu_h=Sum("periods__scu_h") - Sum("periods__sold_scu_h"),
        pue=F("asset__pue"), green_share=F("asset__green_share"),
    )


def listing_get(*, pk: int) -> Listing | None:
    """One listing with its totals and periods."""
    return _with_totals(listing_queryset()).prefetch_related(
        Prefetch("periods", queryset=ListingPeriod.objects.order_by("period_start"))
    ).filter(pk=pk).first()


def listing_visible(*, listing: Listing, organisation: Organisation | None, is_regulator: bool = False) -> bool:
    """Its provider and the regulator see every listing; the market sees active listings of verified providers."""
    if is_regulator or (organisation is not None and listing.asset.provider_id == organisation.id):
        return True
    return listing.status == Listing.Status.ACTIVE and listing.asset.provider.is_verified


def listing_search(*, filters: ListingFilters, latencies: dict[int, int] | None = None) -> QuerySet[Listing]:
    """Listings for the market (verified providers, active) or for one provider (all of its own).

    Annotated with ``listed_scu_h`` and ``sold_scu_h`` (sums over periods) and, given
    ``latencies`` (hub id → ms), ``latency_ms``.
    """
    listings = listing_queryset()
    if filters.provider is not None:
        listings = listings.filter(asset__provider=filters.provider)
    else:
        listings = listings.filter(asset__provider__kyc_status=Organisation.Kyc.VERIFIED)
    if not filters.include_withdrawn:
        listings = listings.filter(status=Listing.Status.ACTIVE)
    if filters.compute_class:
        listings = listings.filter(compute_class__code=filters.compute_class)
    if filters.hub:
        listings = listings.filter(asset__hub__code=filters.hub)
    if filters.hub_ids is not None:
        listings = listings.filter(asset__hub_id__in=filters.hub_ids)
    if filters.window_from:
        listings = listings.filter(window_end__gt=filters.window_from)
    if filters.window_to:
        listings = listings.filter(window_start__lt=filters.window_to)
    if filters.price_min is not None:
        listings = listings.filter(reserve_price__gte=filters.price_min)
    if filters.price_max is not None:
        listings = listings.filter(reserve_price__lte=filters.price_max)
    if filters.pue_max is not None:
        listings = listings.filter(asset__pue__lte=filters.pue_max)
    if filters.green_min is not None:
        listings = listings.filter(asset__green_share__gte=filters.green_min)
    listings = _with_totals(listings)
    if latencies:
        listings = listings.annotate(
            latency_ms=Case(
                *[When(asset__hub_id=hub_id, then=Value(ms)) for hub_id, ms in latencies.items()],
                default=Value(LATENCY_NATIONAL_MS),
                output_field=IntegerField(),
            )
        )
    return listings


def listing_periods(*, listing: Listing) -> QuerySet[ListingPeriod]:
    return listing.periods.order_by("period_start")


def capacity_listed(*, provider_id: int, compute_class_id: int, hub_id: int, period_start: datetime) -> tuple[int, int]:
    """(listed, sold) SCU·h of a provider in one class, hub and delivery period."""
    totals = ListingPeriod.objects.filter(
        provider_id=provider_id, compute_class_id=compute_class_id, hub_id=hub_id, period_start=period_start
    ).aggregate(listed=Sum("scu_h"), sold=Sum("sold_scu_h"))
    return totals["listed"] or 0, totals["sold"] or 0


def listing_periods_for(*, provider_id: int, compute_class_id: int, hub_id: int, period_start: datetime) -> QuerySet[ListingPeriod]:
    """The periods that back a provider's asks in one instrument, oldest listing first."""
    return (
        ListingPeriod.objects.filter(
            provider_id=provider_id, compute_class_id=compute_class_id, hub_id=hub_id, period_start=period_start
        )
        .select_related("listing__asset", "listing__device_type")
        .order_by("listing__created_at", "listing_id", "id")
    )


# --------------------------------------------------------------------------- provenance


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    event_id: int
    reason: str

    def as_dict(self) -> dict:
        return {"seq": self.seq, "event_id": self.event_id, "reason": self.reason}


def event_hash(event: ProvenanceEvent) -> str:
    return provenance_hash(
        seq=event.seq, kind=event.kind, asset_id=event.asset_id, device_type_id=event.device_type_id,
        payload=event.payload, recorded_at=event.recorded_at, prev_hash=event.prev_hash,
    )


def _check_link(event: ProvenanceEvent, previous_seq: int, previous_hash: str) -> str | None:
    if event.seq != previous_seq + 1:
        return "sequence_gap"
    if event.prev_hash != previous_hash:
        return "prev_hash_mismatch"
    if event.hash != event_hash(event):
        return "hash_mismatch"
    return None


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_broken: BrokenLink | None


def provenance_verify(*, chunk_size: int = 2000) -> ChainReport:
    """Recompute the whole chain from the first event; report the first broken link."""
    previous_seq, previous_hash, checked = 0, ZERO_HASH, 0
    events = ProvenanceEvent.objects.order_by("seq").only(
        "id", "seq", "kind", "asset_id", "device_type_id", "payload", "recorded_at", "prev_hash", "hash"
    )
    for event in events.iterator(chunk_size=chunk_size):
        checked += 1
        if reason := _check_link(event, previous_seq, previous_hash):
            return ChainReport(False, checked, event.seq, event.hash, BrokenLink(event.seq, event.id, reason))
        previous_seq, previous_hash = event.seq, event.hash
    return ChainReport(True, checked, previous_seq, previous_hash, None)


@dataclass(frozen=True)
class TimelineEntry:
    event: ProvenanceEvent
    problem: str | None


def asset_provenance_events(*, asset: ComputeAsset) -> QuerySet[ProvenanceEvent]:
    """The asset's events, and those of the device types it holds or lists (attestations)."""
    device_type_ids = InventoryItem.objects.filter(asset=asset).values("device_type_id").union(
        Listing.objects.filter(asset=asset).values("device_type_id")
    )
    return ProvenanceEvent.objects.filter(
        Q(asset=asset) | Q(asset__isnull=True, device_type_id__in=[row["device_type_id"] for row in device_type_ids])
    ).order_by("seq")


def provenance_check(events) -> list[TimelineEntry]:
    """Each event checked against its own hash and its predecessor (one query for the page)."""
    events = list(events)
    predecessors = dict(ProvenanceEvent.objects.filter(seq__in=[e.seq - 1 for e in events]).values_list("seq", "hash"))
    predecessors[0] = ZERO_HASH
    entries = []
    for event in events:
        previous_hash = predecessors.get(event.seq - 1)
        problem = "sequence_gap" if previous_hash is None else _check_link(event, event.seq - 1, previous_hash)
        entries.append(TimelineEntry(event, problem))
    return entries
