"""Which asset delivers each trade: capacity allocation, exact at the SCU·h level.

A seller's capacity in an instrument comes first from its own listings (oldest listing
first), then from capacity it bought earlier in the same instrument (resale): a resale
passes on part of an earlier allocation, so every allocation leads back to a listing
period, its asset and device type. Device-hours = SCU·h ÷ the device type's factor.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db import connection

DEVICE_HOURS = Decimal("0.0001")

# A source of capacity, as a mutable row: [id, scu_h, taken, listing period id, listing id,
# factor, asset id]; ``taken`` is sold_scu_h of a listing period, resold_scu_h of an allocation.
ID, SCU_H, TAKEN, PERIOD, LISTING, FACTOR, ASSET = range(7)

PERIODS_SQL = """
    SELECT k.provider_id, k.instrument_id, p.id, p.scu_h, p.sold_scu_h, p.id, p.listing_id, l.factor, l.asset_id
    FROM marketplace_listingperiod p
    JOIN marketplace_listing l ON l.id = p.listing_id
    JOIN unnest(%s::bigint[], %s::bigint[]) AS k(provider_id, instrument_id) ON p.provider_id = k.provider_id
    JOIN exchange_instrument i ON i.id = k.instrument_id
    WHERE p.compute_class_id = i.compute_class_id AND p.hub_id = i.hub_id AND p.period_start = i.delivery_start
      AND p.scu_h > p.sold_scu_h
    ORDER BY p.listing_id, p.id
    FOR UPDATE OF p
"""

HELD_SQL = """
    SELECT a.holder_id, t.instrument_id, a.id, a.scu_h, a.resold_scu_h, a.listing_period_id, p.listing_id, l.factor,
           l.asset_id
    FROM exchange_allocation a
    JOIN exchange_trade t ON t.id = a.trade_id
    JOIN marketplace_listingperiod p ON p.id = a.listing_period_id
    JOIN marketplace_listing l ON l.id = p.listing_id
    WHERE a.holder_id = ANY(%s::bigint[]) AND t.instrument_id = ANY(%s::bigint[]) AND a.scu_h > a.resold_scu_h
    ORDER BY a.id
    FOR UPDATE OF a
"""


class CapacityShortfall(RuntimeError):
    """A trade whose seller has no capacity left to allocate: an invariant is broken."""


def _device_hours(scu_h: int, factor: Decimal) -> Decimal:
    return (Decimal(scu_h) / factor).quantize(DEVICE_HOURS, rounding=ROUND_HALF_UP)


def _capacity_of_batch(trades):
    """Every listing period and resellable allocation the batch's sellers could deliver
    from, in two queries, locked, keyed by (seller, instrument)."""
    keys = sorted({(t.seller_id, t.instrument_id) for t in trades})
    periods: dict[tuple[int, int], list[list]] = {key: [] for key in keys}
    held: dict[tuple[int, int], list[list]] = {key: [] for key in keys}
    with connection.cursor() as cursor:
        for sql, params, into in (
            (PERIODS_SQL, [[s for s, _ in keys], [i for _, i in keys]], periods),
            (HELD_SQL, [sorted({s for s, _ in keys}), sorted({i for _, i in keys})], held),
        ):
            cursor.execute(sql, params)
            for seller, instrument_id, *row in cursor.fetchall():
                if (seller, instrument_id) in into:
                    into[(seller, instrument_id)].append(row)
    return periods, held


def _write(created: list[tuple], periods: list[list], sources: list[list]) -> None:
    """Three statements for the batch: the allocations, and what they took from periods and sources."""
    with connection.cursor() as cursor:
        if periods:
            cursor.execute(
                "UPDATE marketplace_listingperiod p SET sold_scu_h = d.sold "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, sold) WHERE p.id = d.id",
                [[p[ID] for p in periods], [p[TAKEN] for p in periods]],
            )
        if sources:
            cursor.execute(
                "UPDATE exchange_allocation a SET resold_scu_h = d.resold "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, resold) WHERE a.id = d.id",
                [[a[ID] for a in sources], [a[TAKEN] for a in sources]],
            )
        if created:
            with cursor.copy("COPY exchange_allocation (trade_id, holder_id, listing_period_id, source_id, scu_h, "
                             "device_hours, resold_scu_h) FROM STDIN") as copy:
                for row in created:
                    copy.write_row(row)


def allocate(trades, instrument_codes: dict[int, str]) -> list[tuple]:
    """Create the allocations of ``trades`` (already saved; anything with ``id``, ``instrument_id``,
    ``seller_id``, ``buyer_id`` and ``qty``) and mark listing capacity sold. Returns the rows
    written: (trade id, holder id, listing period id, source allocation id, SCU·h, device-hours, 0)."""
    from marketplace.services import provenance_append_many

    periods, held = _capacity_of_batch(trades)
    touched_periods: dict[int, list] = {}
    touched_sources: dict[int, list] = {}
    created: list[tuple] = []
    sold_by_asset: dict[int, list[dict]] = {}
    device_hours: dict[tuple[int, Decimal], Decimal] = {}
    for trade in trades:
        key = (trade.seller_id, trade.instrument_id)
        need = trade.qty
        own = periods[key]
        # Own listings first (listing periods), then capacity bought earlier (allocations: resale).
        for n, row in enumerate(own + held[key]):
            take = min(need, row[SCU_H] - row[TAKEN])
            if take <= 0:
                continue
            row[TAKEN] += take
            resale = n >= len(own)
            (touched_sources if resale else touched_periods)[row[ID]] = row
            need -= take
            hours = device_hours.get((take, row[FACTOR]))
            if hours is None:
                hours = device_hours[(take, row[FACTOR])] = _device_hours(take, row[FACTOR])
            created.append((trade.id, trade.buyer_id, row[PERIOD], row[ID] if resale else None, take, hours, 0))
            sold_by_asset.setdefault(row[ASSET], []).append(
                {"trade": trade.id, "instrument": instrument_codes[trade.instrument_id], "scu_h": take,
                 **({"resale_of": row[ID]} if resale else {"listing": row[LISTING]})})
            if need == 0:
                break
        if need:
            raise CapacityShortfall(f"trade {trade.id}: seller {trade.seller_id} lacks {need} SCU·h to allocate")
    _write(created, list(touched_periods.values()), list(touched_sources.values()))
    # One provenance record per asset per engine batch lists every sale of it.
    provenance_append_many(events=[(asset_id, "capacity_sold", {"sales": sales}, None)
                                   for asset_id, sales in sold_by_asset.items()])
    return created
