"""Which asset delivers each trade: capacity allocation, exact at the SCU·h level.

A seller's capacity in an instrument comes first from its own listings (oldest listing
first), then from capacity it bought earlier in the same instrument (resale): a resale
passes on part of an earlier allocation, so every allocation leads back to a listing
period, its asset and device type. Device-hours = SCU·h ÷ the device type's factor.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import F

from exchange.models import Allocation, Instrument

DEVICE_HOURS = Decimal("0.0001")


class CapacityShortfall(RuntimeError):
    """A trade whose seller has no capacity left to allocate: an invariant is broken."""


def _device_hours(scu_h: int, factor: Decimal) -> Decimal:
    return (Decimal(scu_h) / factor).quantize(DEVICE_HOURS, rounding=ROUND_HALF_UP)


def _capacity_of_batch(trades, instruments: dict[int, Instrument]):
    """Every listing period and resellable allocation the batch's sellers could deliver
    from, in two queries, locked, keyed by (seller, instrument)."""
    from django.db.models import Q

    from marketplace.models import ListingPeriod

    keys = {(t.seller_id, t.instrument_id) for t in trades}
    periods: dict[tuple[int, int], list] = {key: [] for key in keys}
    held: dict[tuple[int, int], list[Allocation]] = {key: [] for key in keys}
    window = {(i.compute_class_id, i.hub_id, i.delivery_start): i.id for i in instruments.values()}
    condition = Q()
    for seller, instrument_id in keys:
        instrument = instruments[instrument_id]
        condition |= Q(provider_id=seller, compute_class_id=instrument.compute_class_id, hub_id=instrument.hub_id,
                       period_start=instrument.delivery_start)
    for period in (ListingPeriod.objects.select_for_update(of=("self",))
                   .select_related("listing__asset", "listing__device_type")
                   .filter(condition, scu_h__gt=F("sold_scu_h")).order_by("listing_id", "id")):
        key = (period.provider_id, window.get((period.compute_class_id, period.hub_id, period.period_start)))
        if key in periods:
            periods[key].append(period)
    for source in (Allocation.objects.select_for_update(of=("self",))
                   .select_related("listing_period__listing__asset")
                   .annotate(instrument_id=F("trade__instrument_id"))
                   .filter(holder_id__in={seller for seller, _ in keys}, trade__instrument_id__in=list(instruments),
                           scu_h__gt=F("resold_scu_h"))
                   .order_by("id")):
        key = (source.holder_id, source.instrument_id)
        if key in held:
            held[key].append(source)
    return periods, held


def _write(created: list[tuple], periods, sources) -> None:
    """Three statements for the batch: the allocations, and what they took from periods and sources."""
    with connection.cursor() as cursor:
        if periods:
            cursor.execute(
                "UPDATE marketplace_listingperiod p SET sold_scu_h = d.sold "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, sold) WHERE p.id = d.id",
                [[p.id for p in periods], [p.sold_scu_h for p in periods]],
            )
        if sources:
            cursor.execute(
                "UPDATE exchange_allocation a SET resold_scu_h = d.resold "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, resold) WHERE a.id = d.id",
                [[a.id for a in sources], [a.resold_scu_h for a in sources]],
            )
        if created:
            with cursor.copy("COPY exchange_allocation (trade_id, holder_id, listing_period_id, source_id, scu_h, "
                             "device_hours, resold_scu_h) FROM STDIN") as copy:
                for row in created:
                    copy.write_row(row)


def allocate(trades) -> list[tuple]:
    """Create the allocations of ``trades`` (already saved; anything with ``id``, ``instrument_id``,
    ``seller_id``, ``buyer_id`` and ``qty``) and mark listing capacity sold. Returns the rows
    written: (trade id, holder id, listing period id, source allocation id, SCU·h, device-hours, 0)."""
    from marketplace.services import provenance_append

    instruments = Instrument.objects.in_bulk({t.instrument_id for t in trades})
    periods, held = _capacity_of_batch(trades, instruments)
    touched_periods: dict[int, object] = {}
    touched_sources: dict[int, Allocation] = {}
    created: list[tuple] = []
    sold_by_asset: dict[int, list[dict]] = {}
    assets: dict[int, object] = {}
    device_hours: dict[tuple[int, Decimal], Decimal] = {}
    for trade in trades:
        key = (trade.seller_id, trade.instrument_id)
        instrument = instruments[trade.instrument_id]
        need = trade.qty
        # Own listings first (listing periods), then capacity bought earlier (allocations: resale).
        for row in periods[key] + held[key]:
            source = row if isinstance(row, Allocation) else None
            period = row.listing_period if source else row
            free = row.scu_h - (row.resold_scu_h if source else row.sold_scu_h)
            take = min(need, free)
            if take <= 0:
                continue
            if source is None:
                period.sold_scu_h += take
                touched_periods[period.id] = period
            else:
                source.resold_scu_h += take
                touched_sources[source.id] = source
            need -= take
            listing = period.listing
            hours = device_hours.get((take, listing.factor))
            if hours is None:
                hours = device_hours[(take, listing.factor)] = _device_hours(take, listing.factor)
            created.append((trade.id, trade.buyer_id, period.id, source.id if source else None, take, hours, 0))
            assets[listing.asset_id] = listing.asset
            sold_by_asset.setdefault(listing.asset_id, []).append(
                {"trade": trade.id, "instrument": instrument.code, "scu_h": take,
                 **({"listing": period.listing_id} if source is None else {"resale_of": source.id})})
            if need == 0:
                break
        if need:
            raise CapacityShortfall(f"trade {trade.id}: seller {trade.seller_id} lacks {need} SCU·h to allocate")
    _write(created, touched_periods.values(), touched_sources.values())
    # One provenance record per asset per engine batch lists every sale of it.
    for asset_id, sales in sold_by_asset.items():
        provenance_append(asset=assets[asset_id], kind="capacity_sold", payload={"sales": sales})
    return created
