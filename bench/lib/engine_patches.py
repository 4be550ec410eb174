"""Proposed changes to exchange/engine.py, applied by monkeypatching for a measurement only.

``bench/engine.py --experiment NAME`` applies them to measure their effect; the figure that
``make bench`` prints always comes from the unpatched code. Once a change lands in
exchange/, its entry here is obsolete and can be deleted.
"""

from __future__ import annotations

from django.db import connection

from exchange.money import cny

ORDER_UPDATE_SQL = """
UPDATE exchange_order o SET
    status = COALESCE(d.status, o.status),
    reason = COALESCE(d.reason, o.reason),
    remaining = COALESCE(d.remaining, o.remaining),
    filled = o.filled + d.filled_delta,
    held_fen = COALESCE(d.held_fen, o.held_fen),
    hold_per_lot_fen = COALESCE(d.hold_per_lot_fen, o.hold_per_lot_fen),
    priority_seq = COALESCE(d.priority_seq, o.priority_seq),
    price_fen = COALESCE(d.price_fen, o.price_fen),
    updated_at = now()
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
            %s::bigint[], %s::bigint[])
     AS d(id, status, reason, remaining, filled_delta, held_fen, hold_per_lot_fen, priority_seq, price_fen)
WHERE o.id = d.id
RETURNING o.id, o.organisation_id, o.client_order_id, o.instrument_id, o.side, o.status, o.price_fen, o.qty,
          o.filled, o.remaining, o.reason
"""


def write_orders_unnest(self, writes) -> None:
    """EngineRunner._write_orders as one UPDATE … FROM unnest(…) RETURNING the event fields.

    Replaces ``Order.objects.in_bulk`` + ``bulk_update`` (a CASE WHEN per field with one
    branch per order: O(n) Python expressions and O(n²) work in PostgreSQL per batch).
    """
    if not writes.order_updates:
        return
    ids = sorted(writes.order_updates)  # id order, like every other lock taker
    columns = {name: [] for name in ("status", "reason", "remaining", "filled_delta", "held_fen",
                                     "hold_per_lot_fen", "priority_seq", "price_fen")}
    for order_id in ids:
        values = writes.order_updates[order_id]
        for name, column in columns.items():
            column.append(values.get(name, 0 if name == "filled_delta" else None))
    with connection.cursor() as cursor:
        cursor.execute(ORDER_UPDATE_SQL, [ids, *columns.values()])
        rows = cursor.fetchall()
    for oid, org, client_id, instrument_id, side, status, price, qty, filled, remaining, reason in rows:
        writes.private_events.append((org, {
            "type": "order", "order_id": oid, "client_order_id": client_id, "instrument_id": instrument_id,
            "side": side, "status": status, "price": cny(price), "qty": qty, "filled": filled,
            "remaining": remaining, "reason": reason,
        }))


def allocate_prefetched(trades):
    """exchange.allocation.allocate with the seller capacity of the whole batch read in two
    queries (every listing period, every resellable allocation of the batch's sellers and
    instruments, locked in one global order) instead of two queries per (seller, instrument)."""
    from decimal import Decimal

    from django.db.models import F, Q

    from exchange.allocation import CapacityShortfall, _device_hours
    from exchange.models import Allocation, Instrument
    from marketplace.models import ListingPeriod
    from marketplace.services import provenance_append

    instruments = Instrument.objects.in_bulk({t.instrument_id for t in trades})
    keys = {(t.seller_id, t.instrument_id) for t in trades}
    periods: dict[tuple[int, int], list] = {key: [] for key in keys}
    held: dict[tuple[int, int], list] = {key: [] for key in keys}
    window = {(i.compute_class_id, i.hub_id, i.delivery_start): i.id for i in instruments.values()}
    condition = Q()
    for seller, instrument_id in keys:
        i = instruments[instrument_id]
        condition |= Q(provider_id=seller, compute_class_id=i.compute_class_id, hub_id=i.hub_id,
                       period_start=i.delivery_start)
    for period in (ListingPeriod.objects.select_for_update(of=("self",))
                   .select_related("listing__asset", "listing__device_type")
                   .filter(condition, scu_h__gt=F("sold_scu_h")).order_by("listing_id", "id")):
        key = (period.provider_id, window.get((period.compute_class_id, period.hub_id, period.period_start)))
        if key in periods:
            periods[key].append(period)
    sellers = {seller for seller, _ in keys}
    for source in (Allocation.objects.select_for_update(of=("self",))
                   .select_related("listing_period__listing__asset")
                   .annotate(instrument_id=F("trade__instrument_id"))
                   .filter(holder_id__in=sellers, trade__instrument_id__in=list(instruments), scu_h__gt=F("resold_scu_h"))
                   .order_by("id")):
        key = (source.holder_id, source.instrument_id)
        if key in held:
            held[key].append(source)
    touched_periods, touched_sources, created, sold_by_asset = {}, {}, [], {}
    for trade in trades:
        key = (trade.seller_id, trade.instrument_id)
        instrument = instruments[trade.instrument_id]
        need = trade.qty
        for period in periods[key]:
            if need == 0:
                break
            take = min(need, period.scu_h - period.sold_scu_h)
            if take <= 0:
                continue
            period.sold_scu_h += take
            touched_periods[period.id] = period
            need -= take
            created.append(Allocation(trade=trade, holder_id=trade.buyer_id, listing_period=period, scu_h=take,
                                      device_hours=_device_hours(take, period.listing.factor)))
            sold_by_asset.setdefault(period.listing.asset_id, []).append(
                {"trade": trade.id, "instrument": instrument.code, "scu_h": take, "listing": period.listing_id})
        for source in held[key]:
            if need == 0:
                break
            take = min(need, source.scu_h - source.resold_scu_h)
            if take <= 0:
                continue
            source.resold_scu_h += take
            touched_sources[source.id] = source
            need -= take
            created.append(Allocation(trade=trade, holder_id=trade.buyer_id, listing_period=source.listing_period,
                                      source=source, scu_h=take,
                                      device_hours=_device_hours(take, source.listing_period.listing.factor)))
            sold_by_asset.setdefault(source.listing_period.listing.asset_id, []).append(
                {"trade": trade.id, "instrument": instrument.code, "scu_h": take, "resale_of": source.id})
        if need:
            raise CapacityShortfall(f"trade {trade.id}: seller {trade.seller_id} lacks {need} SCU·h to allocate")
    if touched_periods:
        ListingPeriod.objects.bulk_update(touched_periods.values(), ["sold_scu_h"])
    if touched_sources:
        Allocation.objects.bulk_update(touched_sources.values(), ["resold_scu_h"])
    Allocation.objects.bulk_create(created)
    assets = {a.listing_period.listing.asset_id: a.listing_period.listing.asset for a in created}
    for asset_id, sales in sold_by_asset.items():
        provenance_append(asset=assets[asset_id], kind="capacity_sold", payload={"sales": sales})
    del Decimal
    return created


def publish_market_data_first(self, writes) -> None:
    """EngineRunner._publish with the market data first (one PUBLISH per instrument) and the
    private events of every organisation in one event-loop hop (``asyncio.gather`` of the
    group_sends) instead of one ``async_to_sync`` per organisation."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from exchange import market_data
    from exchange.events import organisation_group

    for instrument_id, message in writes.market_data:
        market_data.publish_raw(instrument_id, message)
    by_org: dict[int, list[dict]] = {}
    for org_id, event in writes.private_events:
        by_org.setdefault(org_id, []).append(event)
    if not by_org:
        return

    async def send_all():
        layer = get_channel_layer()
        await asyncio.gather(*(layer.group_send(organisation_group(org_id), {"type": "relay", "events": events})
                               for org_id, events in by_org.items()))

    async_to_sync(send_all)()


EXPERIMENTS = {
    "unnest-orders": [("exchange.engine.EngineRunner._write_orders", write_orders_unnest)],
    "prefetch-allocation": [("exchange.engine.allocate", allocate_prefetched)],
    "publish-md-first": [("exchange.engine.EngineRunner._publish", publish_market_data_first)],
}


def apply(names: list[str]) -> None:
    import importlib

    for name in names:
        for target, function in EXPERIMENTS[name]:
            module_name, _, attribute = target.rpartition(".")
            try:
                owner = importlib.import_module(module_name)
            except ImportError:  # a class inside a module
                module_name, _, class_name = module_name.rpartition(".")
                owner = getattr(importlib.import_module(module_name), class_name)
            setattr(owner, attribute, function)
