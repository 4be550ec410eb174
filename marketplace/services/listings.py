"""Capacity listings: whole delivery periods of attested devices, never beyond the inventory."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.db import transaction
from django.utils import timezone

from exchange.errors import AppError
from marketplace.models import (
    Attestation,
    ComputeAsset,
    ComputeClass,
    DeviceType,
    InventoryItem,
    Listing,
    ListingPeriod,
    ProvenanceEvent,
)
from marketplace.periods import class_period, is_boundary, period_containing, period_label, period_starts
from marketplace.selectors import attestation_check, attestation_latest_valid, peak_devices_listed, qualification_gaps
from marketplace.services.common import PRICE_PLACES, UNPROCESSABLE, checked_decimal, lock_asset
from marketplace.services.provenance import provenance_append

MAX_LISTING_DAYS = 366


def _period_scu_h(*, device_count: int, period: timedelta, factor: Decimal) -> int:
    seconds = int(period.total_seconds())
    return int((Decimal(device_count * seconds) * factor / 3600).to_integral_value(rounding=ROUND_FLOOR))


def _check_window(*, compute_class: ComputeClass, window_start: datetime, window_end: datetime, now: datetime) -> None:
    period = class_period(compute_class)
    label = period_label(period)
    boundary = "00:00 China time" if period == timedelta(days=1) else f"a multiple of {label} from 00:00 China time"
    fields = {}
    if not is_boundary(window_start, period):
        fields["window_start"] = f"Must be {boundary}."
    if not is_boundary(window_end, period):
        fields["window_end"] = f"Must be {boundary}."
    if fields:
        raise AppError("window_misaligned",
                       f"{compute_class.code} is traded in periods of {label}; a window starts and ends at {boundary}.",
                       fields=fields)
    if window_end <= window_start:
        raise AppError("invalid", "The window ends after it starts.", fields={"window_end": "After window_start."})
    if window_start < period_containing(now, period):
        raise AppError("window_in_past", "Capacity can be listed from the current delivery period on.",
                       fields={"window_start": "Not in the past."})
    if window_end > now + timedelta(days=MAX_LISTING_DAYS):
        raise AppError("window_too_long", f"Listings reach at most {MAX_LISTING_DAYS} days ahead.",
                       fields={"window_end": f"Within {MAX_LISTING_DAYS} days."})


def _check_inventory(*, asset: ComputeAsset, device_type: DeviceType, device_count: int, window_start: datetime,
                     window_end: datetime, exclude_listing_id: int | None = None) -> None:
    owned = InventoryItem.objects.filter(asset=asset, device_type=device_type).values_list("count", flat=True).first() or 0
    used = peak_devices_listed(asset_id=asset.id, device_type_id=device_type.id, start=window_start, end=window_end,
                               exclude_listing_id=exclude_listing_id)
    if used + device_count > owned:
        raise AppError(
            "over_listing",
            f"{asset.name} holds {owned} {device_type} devices and other listings use up to {used} of them in this "
            f"window; at most {max(owned - used, 0)} more can be listed.",
            fields={"device_count": f"At most {max(owned - used, 0)}."}, status_code=UNPROCESSABLE,
        )


def listing_period_floor(*, periods: list[ListingPeriod]) -> dict[int, int]:
    """The SCU·h of each period that a change or withdrawal may not take away: what is sold
    or held by open asks (the trading loop keeps that account)."""
    from exchange.capacity import committed_floor

    return committed_floor(periods=periods)


@transaction.atomic
def listing_create(
    *, asset: ComputeAsset, device_type: DeviceType, compute_class: ComputeClass, device_count: int,
    window_start: datetime, window_end: datetime, reserve_price, now: datetime | None = None,
) -> Listing:
    now = now or timezone.now()
    if not isinstance(device_count, int) or device_count < 1:
        raise AppError("invalid", "device_count is a positive whole number.", fields={"device_count": "Positive integer."})
    price = checked_decimal(reserve_price, field="reserve_price", places=PRICE_PLACES, low=Decimal(0), high=Decimal(10**9),
                     low_inclusive=False)
    _check_window(compute_class=compute_class, window_start=window_start, window_end=window_end, now=now)
    if gaps := qualification_gaps(device_type=device_type, compute_class=compute_class):
        raise AppError(
            "device_unqualified",
            f"{device_type} does not meet the minimums of {compute_class.code}: {'; '.join(gaps.values())}.",
            fields={"device_type": "Below the class minimums.", **gaps}, status_code=UNPROCESSABLE,
        )
    attestation = attestation_latest_valid(device_type=device_type, precision=compute_class.reference_precision)
    if attestation is None:
        raise AppError(
            "device_unattested",
            f"{device_type} has no valid attestation at {compute_class.get_reference_precision_display()}; "
            "unattested hardware cannot be listed.",
            fields={"device_type": "No valid attestation."}, status_code=UNPROCESSABLE,
        )
    factor = attestation.sustained(compute_class.reference_precision)
    period = class_period(compute_class)
    scu_h = _period_scu_h(device_count=device_count, period=period, factor=factor)
    if scu_h < 1:
        raise AppError("quantity_too_small",
                       f"{device_count} × {period_label(period)} × {factor} is less than 1 SCU·h per period.",
                       fields={"device_count": "Too few devices for one SCU·h."}, status_code=UNPROCESSABLE)
    asset = lock_asset(asset)
    if not InventoryItem.objects.filter(asset=asset, device_type=device_type, count__gt=0).exists():
        raise AppError("not_in_inventory", f"{asset.name} has no {device_type} in its inventory.",
                       fields={"device_type": "Not in the inventory."}, status_code=UNPROCESSABLE)
    _check_inventory(asset=asset, device_type=device_type, device_count=device_count,
                     window_start=window_start, window_end=window_end)
    listing = Listing.objects.create(
        asset=asset, device_type=device_type, compute_class=compute_class, attestation=attestation, factor=factor,
        device_count=device_count, window_start=window_start, window_end=window_end, reserve_price=price,
    )
    starts = period_starts(window_start, window_end, period)
    ListingPeriod.objects.bulk_create(
        ListingPeriod(listing=listing, period_start=start, scu_h=scu_h, compute_class=compute_class,
                      hub_id=asset.hub_id, provider_id=asset.provider_id)
        for start in starts
    )
    provenance_append(
        asset=asset, kind=ProvenanceEvent.Kind.LISTING_CREATED,
        payload={
            "listing": listing.id, "compute_class": compute_class.code, "device_type": device_type.hardware_facts(),
            "device_count": device_count, "window_start": window_start, "window_end": window_end,
            "periods": len(starts), "scu_h_per_period": scu_h, "factor": factor, "attestation": attestation.id,
            "attestation_sha256": attestation_check(attestation).payload_sha256, "reserve_price": price,
        },
    )
    return listing


def _lock_listing(listing: Listing) -> tuple[Listing, list[ListingPeriod]]:
    listing = Listing.objects.select_for_update().select_related("asset", "device_type", "compute_class").get(pk=listing.pk)
    periods = list(ListingPeriod.objects.select_for_update().filter(listing=listing).order_by("period_start"))
    return listing, periods


@transaction.atomic
def listing_change(
    *, listing: Listing, device_count: int | None = None, reserve_price=None, now: datetime | None = None
) -> Listing:
    """Change the device count (from the next period on) or the reserve price.

    Never below what is committed in any period; growing needs the listing's attestation to
    be still valid and the inventory to allow it.
    """
    now = now or timezone.now()
    lock_asset(listing.asset)
    listing, periods = _lock_listing(listing)
    if listing.status != Listing.Status.ACTIVE:
        raise AppError("listing_withdrawn", "This listing is withdrawn.", status_code=UNPROCESSABLE)
    changes: dict[str, list] = {}
    if reserve_price is not None:
        price = checked_decimal(reserve_price, field="reserve_price", places=PRICE_PLACES, low=Decimal(0),
                         high=Decimal(10**9), low_inclusive=False)
        if price != listing.reserve_price:
            changes["reserve_price"] = [listing.reserve_price, price]
            listing.reserve_price = price
    future = [p for p in periods if p.period_start > now]
    new_scu_h = None
    if device_count is not None and device_count != listing.device_count:
        if not isinstance(device_count, int) or device_count < 1:
            raise AppError("invalid", "device_count is a positive whole number; withdraw the listing to end it.",
                           fields={"device_count": "Positive integer."})
        if not future:
            raise AppError("listing_started", "Every period of this listing has started; its size is fixed.",
                           fields={"device_count": "No future periods."}, status_code=UNPROCESSABLE)
        if device_count > listing.device_count:
            attestation = Attestation.objects.select_related("key", "device_type").get(pk=listing.attestation_id)
            if not attestation_check(attestation).valid:
                raise AppError(
                    "attestation_void",
                    "The attestation behind this listing no longer holds (the hardware facts changed); "
                    "it can shrink, but growing needs a new listing with a fresh attestation.",
                    fields={"device_count": "Cannot grow."}, status_code=UNPROCESSABLE,
                )
            _check_inventory(asset=listing.asset, device_type=listing.device_type, device_count=device_count,
                             window_start=max(listing.window_start, future[0].period_start), window_end=listing.window_end,
                             exclude_listing_id=listing.id)
        new_scu_h = _period_scu_h(device_count=device_count, period=class_period(listing.compute_class),
                                  factor=listing.factor)
        floors = listing_period_floor(periods=future)
        committed = max(floors.values())
        if new_scu_h < committed:
            raise AppError(
                "below_sold",
                f"{committed} SCU·h of a coming period are sold or held by open asks; {device_count} devices give "
                f"only {new_scu_h}.",
                fields={"device_count": "Below what is sold or held."}, status_code=UNPROCESSABLE,
            )
        changes["device_count"] = [listing.device_count, device_count]
        listing.device_count = device_count
        for period in future:
            period.scu_h = new_scu_h
        ListingPeriod.objects.bulk_update(future, ["scu_h"])
    if changes:
        listing.save()
        provenance_append(
            asset=listing.asset, kind=ProvenanceEvent.Kind.LISTING_CHANGED,
            payload={"listing": listing.id, "changes": changes, "scu_h_per_period": new_scu_h,
                     "from_period": future[0].period_start if new_scu_h is not None else None},
        )
    return listing


@transaction.atomic
def listing_withdraw(*, listing: Listing, now: datetime | None = None) -> Listing:
    """Withdraw the periods that have not started; refused while any of them has sold capacity."""
    now = now or timezone.now()
    lock_asset(listing.asset)
    listing, periods = _lock_listing(listing)
    if listing.status != Listing.Status.ACTIVE:
        raise AppError("listing_withdrawn", "This listing is already withdrawn.", status_code=UNPROCESSABLE)
    future = [p for p in periods if p.period_start > now]
    floors = listing_period_floor(periods=future)
    if committed := sum(floors.values()):
        raise AppError(
            "listing_sold",
            f"{committed} SCU·h of this listing are sold or held by open asks for periods that have not started; "
            "it cannot be withdrawn below that. Cancel the asks, or shrink it instead.",
            status_code=UNPROCESSABLE,
        )
    withdrawn = sum(p.scu_h for p in future)
    for period in future:
        period.scu_h = 0
    ListingPeriod.objects.bulk_update(future, ["scu_h"])
    listing.status = Listing.Status.WITHDRAWN
    listing.withdrawn_at = now
    listing.save()
    provenance_append(asset=listing.asset, kind=ProvenanceEvent.Kind.LISTING_WITHDRAWN,
                      payload={"listing": listing.id, "periods": len(future), "scu_h_withdrawn": withdrawn})
    return listing
