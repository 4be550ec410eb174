"""Ended allocations in bulk, as the engine and the providers would have left them, for the
settlement benchmark (Django must be set up).

The engine writes about 18,000 orders per second: building 100,000 allocations through it
would take longer than settling them. So the rows are written here with COPY, exactly as
the engine's write stage writes them (exchange/engine/write.py, exchange/allocation.py):
per trade a filled bid and ask, the trade, its ``trade`` journal (buyer's available →
escrow and fee, seller's fee from its payable, both fees to the exchange), one allocation
from the seller's listing period, and the period's ``sold_scu_h``; then the metering the
providers reported. Cached balances move with the legs, so ``check_ledger`` holds before
settlement as after.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from bench.lib.harness import log
from bench.lib.market import Market

# Metering as the providers report it: the rest of the allocations are delivered in full.
SHORT_SHARE = 0.05  # a shortfall, at every step of the SLA credit schedule
NONE_SHARE = 0.01  # nothing metered at all


@dataclass
class Expected:
    """What each allocation must settle to: allocation id → (SCU·h, delivered SCU·h, price fen, asset id)."""

    allocations: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    # asset id → the share set in force when delivery started [(organisation, bp)]
    owners: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


def owners_create(market: Market, *, co_owners: int = 8) -> dict[int, list[tuple[int, int]]]:
    """Share sets for the providers' assets: a third have three owners with uneven shares
    (the provider and two investors), a third the provider alone on record, a third no
    record (the provider by default). Each co-owned asset gets a second set, effective
    after delivery started, which settlement must not use."""
    from django.utils import timezone

    from accounts.models import Organisation
    from accounts.services import organisation_create
    from marketplace.models import AssetOwnership, ComputeAsset

    investors = [organisation_create(name=f"Bench Owner {i:03d}", kind=Organisation.Kind.PROVIDER,
                                     kyc_status=Organisation.Kyc.VERIFIED, city="Beijing").id for i in range(co_owners)]
    long_ago, lately = timezone.now() - timedelta(days=365), timezone.now() - timedelta(minutes=1)
    expected, rows = {}, []
    for n, provider in enumerate(market.providers):
        asset = ComputeAsset.objects.get(provider_id=provider.organisation_id)
        a, b = investors[n % co_owners], investors[(n + 1) % co_owners]
        if n % 3 == 0:
            shares = [(provider.organisation_id, 5000), (a, 3333), (b, 1667)]
            rows += [AssetOwnership(asset=asset, organisation_id=o, share_bp=bp, effective_from=long_ago) for o, bp in shares]
            rows += [AssetOwnership(asset=asset, organisation_id=o, share_bp=bp, effective_from=lately)
                     for o, bp in ((provider.organisation_id, 2000), (a, 8000))]
        elif n % 3 == 1:
            shares = [(provider.organisation_id, 10000)]
            rows.append(AssetOwnership(asset=asset, organisation_id=provider.organisation_id, share_bp=10000,
                                       effective_from=long_ago))
        else:
            shares = [(provider.organisation_id, 10000)]
        expected[asset.id] = shares
    AssetOwnership.objects.bulk_create(rows)
    return expected


def windows_end(market: Market, *, ago: timedelta) -> None:
    """Move every instrument's delivery window (and its listings') into the past: instrument
    ``n`` ended ``ago`` + ``n`` minutes ago, each window a day long, trading closed."""
    from django.db import connection
    from django.utils import timezone

    from exchange.models import Instrument

    now = timezone.now()
    with connection.cursor() as cursor:
        for n, ref in enumerate(market.instruments):
            end = now - ago - timedelta(minutes=n)
            start = end - timedelta(days=1)
            old = Instrument.objects.get(pk=ref.id).delivery_start
            Instrument.objects.filter(pk=ref.id).update(delivery_start=start, delivery_end=end, state="closed",
                                                        gate_closure_at=start - timedelta(hours=2))
            cursor.execute("UPDATE marketplace_listing SET window_start = %s, window_end = %s "
                           "WHERE id IN (SELECT listing_id FROM marketplace_listingperiod WHERE period_start = %s)",
                           [start, end, old])
            cursor.execute("UPDATE marketplace_listingperiod SET period_start = %s WHERE period_start = %s",
                           [start, old])


def _next_ids(cursor, table: str, count: int) -> list[int]:
    cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count])
    return [row[0] for row in cursor.fetchall()]


def allocations_create(market: Market, count: int, *, seed: int, tag: str, owners) -> Expected:
    """``count`` traded, allocated and metered allocations in the (ended) instruments of ``market``."""
    from django.db import connection, transaction

    from exchange.models import FeeTier, Instrument, LedgerAccount
    from exchange.money import fee_fen
    from marketplace.models import ListingPeriod

    started = time.monotonic()
    rng = random.Random(seed)
    tier = FeeTier.objects.get(is_default=True)
    instruments = {i.id: i for i in Instrument.objects.filter(pk__in=[r.id for r in market.instruments])}
    periods = {(p.provider_id, p.period_start): (p.id, p.listing.asset_id, p.listing.factor)
               for p in ListingPeriod.objects.select_related("listing")}
    K = LedgerAccount.Kind
    orgs = [t.organisation_id for t in market.traders]
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO exchange_ledgeraccount (organisation_id, kind, balance) "
                       "SELECT o, k, 0 FROM unnest(%s::bigint[]) o CROSS JOIN unnest(%s::text[]) k ON CONFLICT DO NOTHING",
                       [orgs, [K.AVAILABLE, K.ESCROW, K.PAYABLE]])
        cursor.execute("INSERT INTO exchange_ledgeraccount (organisation_id, kind, balance) VALUES (NULL, 'fees', 0) "
                       "ON CONFLICT DO NOTHING")
    accounts = {(o, k): a for a, o, k in LedgerAccount.objects.values_list("id", "organisation_id", "kind")}

    expected = Expected(owners=owners)
    orders, trades, legs, allocations, reports, sold = [], [], [], [], [], {}
    with transaction.atomic(), connection.cursor() as cursor:
        order_ids = iter(_next_ids(cursor, "exchange_order", 2 * count))
        trade_ids = _next_ids(cursor, "exchange_trade", count)
        journal_ids = _next_ids(cursor, "exchange_journal", count)
        allocation_ids = _next_ids(cursor, "exchange_allocation", count)
        cursor.execute("SELECT COALESCE(MAX(inbox_seq), 0) FROM exchange_trade")
        inbox_seq = cursor.fetchone()[0]
        for n in range(count):
            ref = rng.choice(market.instruments)
            instrument = instruments[ref.id]
            buyer, seller = rng.choice(market.buyers), rng.choice(market.providers)
            price = ref.reference_fen + rng.randint(-150, 150)
            qty = rng.randint(1, 40) if rng.random() < 0.9 else rng.randint(200, 2000)
            notional = price * qty
            buyer_fee, seller_fee = fee_fen(notional, tier.taker_bps), fee_fen(notional, tier.maker_bps)
            at = instrument.gate_closure_at - timedelta(hours=1)
            buy_id, sell_id = next(order_ids), next(order_ids)
            for order_id, trader, side in ((buy_id, buyer, "buy"), (sell_id, seller, "sell")):
                orders.append((order_id, trader.owner_id, f"{tag}{n}", side, "limit", "GTC", False, price, qty, 0, qty,
                               None, 0, 0, 0, "filled", "", 0, at, at, ref.id, trader.organisation_id, trader.user_id))
            trade_id = trade_ids[n]
            trades.append((trade_id, ref.id, inbox_seq + 1 + n, 0, price, qty, buy_id, sell_id, buyer.organisation_id,
                           seller.organisation_id, "buy", buyer_fee, seller_fee, at))
            journal = journal_ids[n]
            legs += [(journal, accounts[(buyer.organisation_id, K.AVAILABLE)], -notional - buyer_fee),
                     (journal, accounts[(buyer.organisation_id, K.ESCROW)], notional),
                     (journal, accounts[(seller.organisation_id, K.PAYABLE)], -seller_fee),
                     (journal, accounts[(None, K.FEES)], buyer_fee + seller_fee)]
            period, asset, factor = periods[(seller.organisation_id, instrument.delivery_start)]
            allocation_id = allocation_ids[n]
            device_hours = Decimal(qty) / factor
            allocations.append((allocation_id, trade_id, buyer.organisation_id, period, None, qty, device_hours, 0))
            sold[period] = sold.get(period, 0) + qty
            roll = rng.random()
            if roll < NONE_SHARE:
                delivered = 0
            elif roll < NONE_SHARE + SHORT_SHARE:
                # Short by 0.3 % to 60 % (each step of the SLA credit ladder once allocations are large).
                delivered = qty - max(1, int(qty * rng.choice((0.003, 0.02, 0.1, 0.6))))
            else:
                delivered = qty
            during = instrument.delivery_start + timedelta(hours=1)
            if delivered and delivered > 1 and rng.random() < 0.1:  # some in two reports
                first = delivered // 2
                reports += [(allocation_id, Decimal(first) / factor, seller.user_id, during),
                             (allocation_id, Decimal(delivered - first) / factor, seller.user_id, during)]
            elif delivered:
                reports.append((allocation_id, Decimal(delivered) / factor, seller.user_id, during))
            expected.allocations[allocation_id] = (qty, delivered, price, asset)
        with cursor.copy("COPY exchange_order (id, owner_id, client_order_id, side, type, tif, post_only, price_fen, "
                         "qty, remaining, filled, expires_at, protect_ticks, held_fen, hold_per_lot_fen, status, reason, "
                         "priority_seq, created_at, updated_at, instrument_id, organisation_id, user_id) FROM STDIN") as copy:
            for row in orders:
                copy.write_row(row)
        with cursor.copy("COPY exchange_trade (id, instrument_id, inbox_seq, match_index, price_fen, qty, buy_order_id, "
                         "sell_order_id, buyer_id, seller_id, aggressor, buyer_fee_fen, seller_fee_fen, created_at) "
                         "FROM STDIN") as copy:
            for row in trades:
                copy.write_row(row)
        with cursor.copy("COPY exchange_journal (id, kind, trade_id, memo, created_at) FROM STDIN") as copy:
            for journal, trade in zip(journal_ids, trades):
                copy.write_row((journal, "trade", trade[0], "", trade[-1]))
        with cursor.copy("COPY exchange_ledgerleg (journal_id, account_id, amount_fen) FROM STDIN") as copy:
            for row in legs:
                copy.write_row(row)
        deltas: dict[int, int] = {}
        for _, account, amount in legs:
            deltas[account] = deltas.get(account, 0) + amount
        cursor.execute("UPDATE exchange_ledgeraccount a SET balance = a.balance + d.delta "
                       "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) WHERE a.id = d.id",
                       [list(deltas), list(deltas.values())])
        with cursor.copy("COPY exchange_allocation (id, trade_id, holder_id, listing_period_id, source_id, scu_h, "
                         "device_hours, resold_scu_h) FROM STDIN") as copy:
            for row in allocations:
                copy.write_row(row)
        cursor.execute("UPDATE marketplace_listingperiod p SET sold_scu_h = p.sold_scu_h + d.qty "
                       "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, qty) WHERE p.id = d.id",
                       [list(sold), list(sold.values())])
        with cursor.copy("COPY settlement_meterreport (allocation_id, device_hours, source, note, reported_by_id, "
                         "created_at) FROM STDIN") as copy:
            for allocation_id, hours, user_id, at in reports:
                copy.write_row((allocation_id, hours, "api", "", user_id, at))
    # As a database that has been running: statistics current, hint bits and visibility map set
    # (else the first pass over freshly copied pages writes them, and the runner pays for it).
    for table in ("exchange_order", "exchange_trade", "exchange_journal", "exchange_ledgerleg", "exchange_allocation",
                  "settlement_meterreport", "exchange_ledgeraccount", "marketplace_listingperiod"):
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    short = sum(1 for scu_h, delivered, *_ in expected.allocations.values() if 0 < delivered < scu_h)
    none = sum(1 for _, delivered, *_ in expected.allocations.values() if delivered == 0)
    log(f"allocations: {count:,} ended allocations written in {time.monotonic() - started:.1f} s ({len(reports):,} "
        f"metering reports; {short:,} short, {none:,} with nothing metered)")
    return expected
