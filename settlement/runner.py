"""The settlement runner: settles every allocation whose delivery window and dispute window
have passed, in batches, each batch one transaction.

For one allocation of ``n`` SCU·h at trade price ``p`` (fen), delivered ``d`` SCU·h —
what its own metering (or a dispute's adjustment) gives where it was delivered, plus what
its resales delivered — the journals are, in this order and only when not zero:

- ``settlement``: the holder's escrow pays ``d·p`` into the seller's payable;
- ``refund``: the holder's escrow returns ``(n − d)·p`` to its available balance;
- ``sla_credit``: the schedule's credit on ``n·p``, paid to the holder from these proceeds
  (after the seller's share of its trade fee, already charged to its payable), then from
  the seller's available balance; ``debt``: what neither covers, owed to the holder;
- ``settlement`` / ``debt`` again when the proceeds do not even cover the fee share: the
  rest from the seller's available balance, else owed to the exchange;
- ``debt_repayment``: the seller's outstanding debts, oldest first, from what is left;
- ``payout``: the rest, to the asset's owners by the share set in force when delivery
  started (largest remainder, so the parts sum exactly) — or, for resold capacity, to
  the reseller.

A resale chain settles trade by trade, each at its own price: an allocation waits until
its resales have settled, and counts what they delivered. Exactly once: the batch's rows
are taken ``FOR UPDATE SKIP LOCKED`` and marked ``settled_at`` in the transaction that
writes the journals (a second runner skips or no longer sees them; a killed runner's
batch rolls back whole), and ``Settlement`` is keyed by the allocation. Runners take a
shard's advisory lock as the engine's do, so one runs per shard and others stand by. A pass
outside any transaction keeps two batches in flight, on two connections: the next is taken
and read while the one before it is stored (settlement.pipeline).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from exchange.db import pg_array
from exchange.events import private_events_number, private_events_publish
from exchange.models import Journal, LedgerAccount
from exchange.money import cny
from exchange.runners import ShardLock, cyclic_gc_paused
from marketplace.services.provenance import provenance_copy, provenance_head_locked, provenance_links
from settlement.bulk import BulkWriter, copy_text
from settlement.pipeline import PipelinedPass

log = logging.getLogger("settlement.runner")

ADVISORY_LOCK_CLASS = 0x7374  # "st": settlement shards (the engine's class is "cx")
K = LedgerAccount.Kind
J = Journal.Kind
ONE = Decimal(1)
# The kinds as plain strings: used several times per allocation, an enum member costs a
# descriptor call to read and twice a string's time as a dictionary key.
AVAILABLE, ESCROW, PAYABLE, DEBT, RECEIVABLE = (K.AVAILABLE.value, K.ESCROW.value, K.PAYABLE.value, K.DEBT.value,
                                                K.RECEIVABLE.value)
SETTLEMENT, REFUND, SLA_CREDIT, DEBT_RECORDED, DEBT_REPAYMENT, PAYOUT = (
    J.SETTLEMENT.value, J.REFUND.value, J.SLA_CREDIT.value, J.DEBT.value, J.DEBT_REPAYMENT.value, J.PAYOUT.value)
ZERO = cny(0)  # most allocations' credits, refunds and debts: not formatted again each time
NULL = "\\N"  # COPY's text format
# Allocations worked out per write handed to the writer thread (see settlement.bulk).
CHUNK = 1000

# The shard's ended instruments first, in a query of their own: given as a list, the
# planner can estimate how many trades are due (behind "instrument_id % shards = shard"
# it guessed 0.5 %, joined every unsettled allocation and sorted them on disk for each
# batch); with the estimate it walks the unsettled index backwards and stops at the limit.
ENDED_SQL = """
    SELECT id, code, delivery_start FROM exchange_instrument
    WHERE delivery_end <= %(cutoff)s AND id %% %(shards)s = %(shard)s
"""

DUE_SQL = """
    SELECT a.id, a.trade_id, a.holder_id, a.source_id, a.scu_h, a.resold_scu_h,
           t.price_fen, t.qty, t.seller_id, t.seller_fee_fen, t.instrument_id, l.factor, l.asset_id
    FROM exchange_allocation a
    JOIN exchange_trade t ON t.id = a.trade_id
    JOIN marketplace_listingperiod p ON p.id = a.listing_period_id
    JOIN marketplace_listing l ON l.id = p.listing_id
    WHERE a.settled_at IS NULL AND t.instrument_id = ANY(%(instruments)s::bigint[])
      AND NOT EXISTS (SELECT 1 FROM settlement_dispute d WHERE d.allocation_id = a.id AND d.state = 'open')
      AND NOT EXISTS (SELECT 1 FROM exchange_allocation c WHERE c.source_id = a.id AND c.settled_at IS NULL)
    ORDER BY a.id DESC
    LIMIT %(limit)s
    FOR UPDATE OF a SKIP LOCKED
"""


@dataclass(slots=True)
class Due:
    id: int
    trade_id: int
    holder_id: int
    source_id: int | None
    scu_h: int
    resold_scu_h: int
    price_fen: int
    qty: int
    seller_id: int
    seller_fee_fen: int
    delivery_start: datetime
    instrument: str
    factor: Decimal
    asset_id: int


class Reads(NamedTuple):
    ids: str  # the batch's allocation ids, as a PostgreSQL array
    delivered_own: dict[int, int]
    children: dict[int, int]
    fee_shares: dict[int, int]
    owners: dict[tuple[int, datetime], list[tuple[int, int]]]


@dataclass
class Batch:
    """Everything a batch writes, gathered before any of it is written."""

    journals: list[tuple] = field(default_factory=list)  # (kind, trade id, allocation id, memo)
    legs: list[tuple] = field(default_factory=list)  # (journal index, account id, fen)
    settlements: list[tuple] = field(default_factory=list)
    payouts: list[tuple] = field(default_factory=list)  # (allocation id, organisation id, share bp, fen)
    debts: list[tuple] = field(default_factory=list)  # (debt id, debtor, creditor or None, allocation id, fen)
    repaid: dict[int, int] = field(default_factory=dict)  # debt id → fen repaid now
    events: list[tuple[int, dict]] = field(default_factory=list)
    settled_by_asset: dict[int, list] = field(default_factory=dict)


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def largest_remainder(total: int, shares: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Split ``total`` fen by ``(organisation id, share bp)`` (bp summing to 10,000):
    ``(organisation id, share bp, fen)`` whose fen sum exactly to ``total``. The fen left
    by rounding down go one each to the largest remainders (ties: larger share, then
    lower organisation id)."""
    if len(shares) == 1 and shares[0][1] == 10000:  # one owner: no rounding (most assets)
        return [(shares[0][0], 10000, total)]
    parts = [(org, bp, total * bp // 10000, total * bp % 10000) for org, bp in shares]
    left = total - sum(p[2] for p in parts)
    order = sorted(range(len(parts)), key=lambda n: (-parts[n][3], -parts[n][1], parts[n][0]))
    extra = set(order[:left])
    return [(org, bp, fen + (1 if n in extra else 0)) for n, (org, bp, fen, _) in enumerate(parts)]


def sla_credit_bp(delivered: int, scu_h: int, steps: list[tuple[int, int]]) -> int:
    """The schedule's credit (bp of the value) for ``delivered`` of ``scu_h``: the largest
    credit among the steps whose threshold the delivered share falls below."""
    return max((credit for below, credit in steps if delivered * 10000 < below * scu_h), default=0)


class SettlementRunner(ShardLock):
    ADVISORY_LOCK_CLASS = ADVISORY_LOCK_CLASS

    def __init__(self, *, shard: int = 0, shards: int = 1, batch_size: int | None = None):
        self.shard, self.shards = shard, shards
        self.batch_size = batch_size or settings.SETTLEMENT_BATCH_SIZE
        if self.batch_size < 1:
            raise ValueError(f"the batch size must be at least 1 (got {self.batch_size}; see SETTLEMENT_BATCH_SIZE)")
        self._sequences: dict[str, str] = {}
        self._published: Future | None = None  # the last batch's events on their way
        self._in_pass = False

    # passes

    def settle_pass(self, *, now: datetime | None = None, skip_dispute_window: bool = False) -> int:
        """Settle every allocation due now, batch by batch; return how many were settled."""
        now = now or timezone.now()
        cutoff = now if skip_dispute_window else now - timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS)
        steps = self._sla_steps()
        total = 0
        self._in_pass = True
        try:
            if not connection.in_atomic_block:
                # Two batches at once, on two connections (see settlement.pipeline). Inside the
                # caller's transaction a second connection would not see what it has written.
                return PipelinedPass(self, cutoff=cutoff, steps=steps, now=now).run()
            while True:
                with cyclic_gc_paused(), transaction.atomic():
                    settled = self._settle_batch(cutoff=cutoff, steps=steps, now=now)
                total += settled
                if settled == 0:
                    return total
        finally:
            self._in_pass = False
            self._published_wait()

    def _publish(self, events: list[tuple[int, dict]]) -> None:
        """After a batch's commit: its events to the channel layer, each batch's after the one
        before; during a pass without waiting for them (the next batch goes on meanwhile). A
        commit after the pass (the caller's transaction) sends them before it returns."""
        try:
            self._published = private_events_publish(events, after=self._published, wait=not self._in_pass)
        except Exception:  # as on_commit(robust=True): the batch is committed whatever happens here
            log.exception("publishing a settlement batch's events failed")

    def _published_wait(self) -> None:
        """Until every committed batch's events are sent (a pass returns once they are)."""
        published, self._published = self._published, None
        if published is not None:
            try:
                published.result()
            except Exception:
                log.exception("publishing a settlement batch's events failed")

    def run(self, *, stop=lambda: False, interval: float | None = None) -> None:
        interval = settings.SETTLEMENT_INTERVAL_SECONDS if interval is None else interval
        while not stop():
            try:
                settled = self.settle_pass()
                if settled:
                    log.info("settled %d allocation(s)", settled)
            except Exception:
                # A batch that failed rolled back whole; the next pass tries it again.
                log.exception("a settlement pass failed; retrying in %s s", interval)
            deadline = time.monotonic() + interval
            while not stop() and time.monotonic() < deadline:
                time.sleep(0.1)

    @staticmethod
    def _sla_steps() -> list[tuple[int, int]]:
        from settlement.models import SlaCreditStep

        return list(SlaCreditStep.objects.values_list("below_bp", "credit_bp"))

    # one batch

    def _settle_batch(self, *, cutoff: datetime, steps, now: datetime) -> int:
        due = self._batch_due(cutoff)
        return self._batch_write(due, self._batch_read(due), steps=steps, now=now) if due else 0

    def _batch_due(self, cutoff: datetime) -> list[Due]:
        """The next batch's allocations, locked (to the end of the caller's transaction)."""
        with connection.cursor() as cursor:
            cursor.execute(ENDED_SQL, {"cutoff": cutoff, "shards": self.shards, "shard": self.shard})
            ended = {instrument_id: (code, start) for instrument_id, code, start in cursor.fetchall()}
            if not ended:
                return []
            cursor.execute(DUE_SQL, {"instruments": pg_array(sorted(ended)), "limit": self.batch_size})
            due = [Due(*row[:10], *ended[row[10]][::-1], *row[11:]) for row in cursor.fetchall()]
            if due:
                # The query's NOT EXISTS reads disputes as of its start; one opened (and committed)
                # between then and the row lock is not in it. Read again now that the rows are locked:
                # a dispute opened from here on waits for them and then finds them settled.
                cursor.execute("SELECT allocation_id FROM settlement_dispute WHERE allocation_id = ANY(%s::bigint[]) "
                               "AND state = 'open'", [pg_array([d.id for d in due])])
                disputed = {allocation_id for (allocation_id,) in cursor.fetchall()}
                due = [d for d in due if d.id not in disputed]
        return due

    def _batch_read(self, due: list[Due]) -> Reads:
        """What settling ``due`` needs that no other settlement batch changes: metering, the
        resales' deliveries, fee shares, owners (read before the batch before it commits, when
        pipelined: see settlement.pipeline)."""
        ids = pg_array([d.id for d in due])
        return Reads(ids, self._delivered_own(due, ids), self._children_delivered(ids), self._fee_shares(due),
                     self._owners(due))

    @staticmethod
    def _mark_settled(cursor, ids: str, now: datetime) -> None:
        cursor.execute("UPDATE exchange_allocation SET settled_at = %s WHERE id = ANY(%s::bigint[])", [now, ids])

    def _batch_write(self, due: list[Due], reads: Reads, *, steps, now: datetime, marked: bool = False) -> int:
        """Settle ``due``: read and lock what earlier batches change (debts, the provenance
        head, accounts), work out and write everything; publish the events after the commit.
        ``marked``: the allocations are marked settled already, in this transaction."""
        ids, delivered_own, children, fee_shares, owners = reads
        sellers = sorted({d.seller_id for d in due})
        debts = self._outstanding_debts(sellers)
        orgs = {d.holder_id for d in due} | set(sellers) | {o for sets in owners.values() for o, _ in sets}
        orgs |= {creditor for rows in debts.values() for _, creditor, _ in rows if creditor}
        # The provenance chain's head, locked (to the commit) before the accounts as the engine
        # takes them: it appends a batch's sales before it locks its accounts, so a runner holding
        # accounts while it waited for the head deadlocked with an engine batch of the same organisations.
        head = provenance_head_locked()
        accounts, balances = self._lock_accounts(sorted(orgs))
        batch = Batch()
        stamp = now.isoformat()
        # From here every statement goes to the writer thread, in order, and PostgreSQL stores
        # one chunk while this thread works out the next (see settlement.bulk).
        writer = BulkWriter(connection)
        try:
            if not marked:
                writer.submit(partial(self._mark_settled, ids=ids, now=now))
            for start in range(0, len(due), CHUNK):
                marks = (len(batch.journals), len(batch.legs), len(batch.settlements), len(batch.payouts))
                for d in due[start:start + CHUNK]:
                    self._settle_one(d, delivered_own.get(d.id, 0) + children.get(d.id, 0), fee_shares[d.id], steps,
                                     owners, debts, accounts, balances, batch)
                writer.submit(partial(self._write_chunk, journals=batch.journals[marks[0]:],
                                      legs=batch.legs[marks[1]:], first=marks[0],
                                      settlements=batch.settlements[marks[2]:], payouts=batch.payouts[marks[3]:],
                                      stamp=stamp))
            self._write(batch, stamp, head, writer)
        finally:
            writer.join()
        events = batch.events
        transaction.on_commit(lambda: self._publish(events))
        return len(due)

    @staticmethod
    def _delivered_own(due: list[Due], ids: str) -> dict[int, int]:
        """SCU·h delivered where each allocation itself was delivered: its metering reports'
        device-hours (or the latest adjustment by a dispute) at its listing's factor, capped
        at what it did not resell."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT allocation_id, SUM(device_hours) FROM settlement_meterreport "
                           "WHERE allocation_id = ANY(%s::bigint[]) GROUP BY allocation_id", [ids])
            hours = dict(cursor.fetchall())
            cursor.execute("SELECT DISTINCT ON (allocation_id) allocation_id, delivered_device_hours "
                           "FROM settlement_dispute WHERE allocation_id = ANY(%s::bigint[]) AND state = 'adjusted' "
                           "ORDER BY allocation_id, resolved_at DESC, id DESC", [ids])
            hours.update(cursor.fetchall())
        out = {}
        for d in due:
            h = hours.get(d.id)
            if h:
                scu_h = int((h * d.factor).quantize(ONE, rounding=ROUND_HALF_UP))
                out[d.id] = min(scu_h, d.scu_h - d.resold_scu_h)
        return out

    @staticmethod
    def _children_delivered(ids: str) -> dict[int, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT c.source_id, SUM(s.delivered_scu_h) FROM exchange_allocation c "
                           "JOIN settlement_settlement s ON s.allocation_id = c.id "
                           "WHERE c.source_id = ANY(%s::bigint[]) GROUP BY c.source_id", [ids])
            return {source: int(total) for source, total in cursor.fetchall()}

    @staticmethod
    def _fee_shares(due: list[Due]) -> dict[int, int]:
        """Each allocation's part of its trade's seller fee, by SCU·h, exact: the trade's
        allocations in id order take floor(fee × cumulative / qty) differences."""
        trades = pg_array(sorted({d.trade_id for d in due}))
        by_trade = {d.trade_id: d for d in due}
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, trade_id, scu_h, SUM(scu_h) OVER (PARTITION BY trade_id ORDER BY id) "
                           "FROM exchange_allocation WHERE trade_id = ANY(%s::bigint[])", [trades])
            rows = cursor.fetchall()
        out = {}
        for allocation_id, trade_id, scu_h, cumulative in rows:
            trade = by_trade[trade_id]
            fee, qty = trade.seller_fee_fen, trade.qty
            out[allocation_id] = fee * int(cumulative) // qty - fee * (int(cumulative) - scu_h) // qty
        return out

    @staticmethod
    def _owners(due: list[Due]) -> dict[tuple[int, datetime], list[tuple[int, int]]]:
        """(asset, delivery start) → [(organisation, share bp)]: the share set in force when
        the delivery window started; the asset's provider alone if it had none."""
        keys = {(d.asset_id, d.delivery_start) for d in due if d.source_id is None}
        if not keys:
            return {}
        assets = pg_array(sorted({a for a, _ in keys}))
        sets: dict[int, list[tuple[datetime, int, int]]] = {}
        with connection.cursor() as cursor:
            cursor.execute("SELECT asset_id, effective_from, organisation_id, share_bp FROM marketplace_assetownership "
                           "WHERE asset_id = ANY(%s::bigint[]) ORDER BY asset_id, effective_from, organisation_id",
                           [assets])
            for asset_id, effective_from, org, bp in cursor.fetchall():
                sets.setdefault(asset_id, []).append((effective_from, org, bp))
            cursor.execute("SELECT id, provider_id FROM marketplace_computeasset WHERE id = ANY(%s::bigint[])", [assets])
            providers = dict(cursor.fetchall())
        out = {}
        for asset_id, start in keys:
            rows = [r for r in sets.get(asset_id, ()) if r[0] <= start]
            if rows:
                latest = max(r[0] for r in rows)
                out[(asset_id, start)] = [(org, bp) for eff, org, bp in rows if eff == latest]
            else:
                out[(asset_id, start)] = [(providers[asset_id], 10000)]
        return out

    @staticmethod
    def _outstanding_debts(sellers: list[int]) -> dict[int, list[list]]:
        """Each seller's unpaid debts, oldest first, locked: [debt id, creditor, fen outstanding]."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, debtor_id, creditor_id, amount_fen - repaid_fen FROM settlement_debt "
                           "WHERE debtor_id = ANY(%s::bigint[]) AND repaid_fen < amount_fen ORDER BY id FOR UPDATE",
                           [pg_array(sellers)])
            out: dict[int, list[list]] = {}
            for debt_id, debtor, creditor, outstanding in cursor.fetchall():
                out.setdefault(debtor, []).append([debt_id, creditor, outstanding])
        return out

    KINDS = (K.AVAILABLE, K.ESCROW, K.PAYABLE, K.DEBT, K.RECEIVABLE)

    def _lock_accounts(self, orgs: list[int]) -> tuple[dict[tuple[int, str], int], dict[int, int]]:
        """The accounts a batch may touch, created if missing, locked in id order (as the
        engine and order entry lock them, so no two wait on each other in a cycle) before
        anything is read from them; their balances now."""
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO exchange_ledgeraccount (organisation_id, kind, balance) "
                "SELECT o, k, 0 FROM unnest(%s::bigint[]) AS o CROSS JOIN unnest(%s::text[]) AS k "
                "ON CONFLICT DO NOTHING", [pg_array(orgs), "{" + ",".join(self.KINDS) + "}"])
            cursor.execute("SELECT id, organisation_id, kind, balance FROM exchange_ledgeraccount "
                           "WHERE organisation_id = ANY(%s::bigint[]) AND kind = ANY(%s::text[]) ORDER BY id FOR UPDATE",
                           [pg_array(orgs), "{" + ",".join(self.KINDS) + "}"])
            rows = cursor.fetchall()
        return {(org, kind): account for account, org, kind, _ in rows}, {account: bal for account, _, _, bal in rows}

    def _settle_one(self, d: Due, delivered: int, fee: int, steps, owners, debts, accounts, balances,
                    batch: Batch) -> None:
        delivered = min(delivered, d.scu_h)
        refunded = d.scu_h - delivered
        price = d.price_fen
        paid, refund, value = delivered * price, refunded * price, d.scu_h * price
        # Delivered in full earns no credit: no step's threshold is above 10,000 bp.
        credit_bp = sla_credit_bp(delivered, d.scu_h, steps) if refunded else 0
        credit = _half_up(value * credit_bp, 10000) if credit_bp else 0
        holder, seller = d.holder_id, d.seller_id
        escrow, holder_available = accounts[(holder, ESCROW)], accounts[(holder, AVAILABLE)]
        payable, seller_available = accounts[(seller, PAYABLE)], accounts[(seller, AVAILABLE)]
        seller_debt = accounts[(seller, DEBT)]
        journals, all_legs, trade_id, allocation_id = batch.journals, batch.legs, d.trade_id, d.id

        def journal(kind: str, legs: list[tuple[int, int]], memo: str = "") -> None:
            n = len(journals)
            journals.append((kind, trade_id, allocation_id, memo))
            for account, amount in legs:
                if amount:
                    all_legs.append((n, account, amount))
                    balances[account] += amount

        if paid:
            journal(SETTLEMENT, [(escrow, -paid), (payable, paid)])
        if refund:
            journal(REFUND, [(escrow, -refund), (holder_available, refund)])
        cover = paid - fee  # what the proceeds leave after the fee share charged at the trade
        credit_debt = fee_debt = 0
        from_proceeds = 0
        if credit:
            from_proceeds = min(credit, max(cover, 0))
            from_available = min(credit - from_proceeds, max(balances[seller_available], 0))
            credit_debt = credit - from_proceeds - from_available
            if from_proceeds + from_available:
                journal(SLA_CREDIT, [(payable, -from_proceeds), (seller_available, -from_available),
                                       (holder_available, from_proceeds + from_available)])
            if credit_debt:
                journal(DEBT_RECORDED, [(seller_debt, -credit_debt), (accounts[(holder, RECEIVABLE)], credit_debt)],
                        "SLA credit the seller could not pay")
                self._debt_record(batch, debts, seller, holder, d.id, credit_debt)
        if cover < 0:
            from_available = min(-cover, max(balances[seller_available], 0))
            if from_available:
                journal(SETTLEMENT, [(seller_available, -from_available), (payable, from_available)],
                        "fees beyond the proceeds")
            fee_debt = -cover - from_available
            if fee_debt:
                journal(DEBT_RECORDED, [(seller_debt, -fee_debt), (payable, fee_debt)], "fees owed to the exchange")
                self._debt_record(batch, debts, seller, None, d.id, fee_debt)
        left = max(cover, 0) - from_proceeds
        repaid = 0
        for row in debts.get(seller, ()):
            if left == 0:
                break
            debt_id, creditor, outstanding = row
            take = min(left, outstanding)
            if take == 0:
                continue
            legs = [(payable, -take), (seller_debt, take)]
            if creditor:
                legs += [(accounts[(creditor, RECEIVABLE)], -take), (accounts[(creditor, AVAILABLE)], take)]
                batch.events.append((creditor, {"type": "debt.repaid", "allocation_id": d.id, "debt_id": debt_id,
                                                "debtor_id": seller, "amount": cny(take)}))
            journal(DEBT_REPAYMENT, legs)
            row[2] -= take
            batch.repaid[debt_id] = batch.repaid.get(debt_id, 0) + take
            left -= take
            repaid += take
        parts = largest_remainder(left, owners[(d.asset_id, d.delivery_start)] if d.source_id is None
                                  else [(seller, 10000)]) if left else []
        if parts:
            journal(PAYOUT, [(payable, -left)] + [(accounts[(org, AVAILABLE)], fen) for org, _, fen in parts])
            for org, bp, fen in parts:
                batch.payouts.append((d.id, org, bp, fen))
                batch.events.append((org, {"type": "payout.received", "allocation_id": d.id, "trade_id": d.trade_id,
                                           "instrument": d.instrument, "share_bp": bp, "amount": cny(fen)}))
        batch.settlements.append((d.id, d.trade_id, holder, seller, price, d.scu_h, delivered, refunded, paid, refund,
                                  fee, credit_bp, credit, credit_debt, fee_debt, repaid, left))
        batch.settled_by_asset.setdefault(d.asset_id, []).append([d.id, delivered, refunded])
        common = {"type": "allocation.settled", "allocation_id": d.id, "trade_id": d.trade_id,
                  "instrument": d.instrument, "scu_h": d.scu_h, "delivered_scu_h": delivered,
                  "refunded_scu_h": refunded, "price": cny(price), "sla_credit": cny(credit) if credit else ZERO}
        batch.events.append((holder, {**common, "role": "holder", "refund": cny(refund) if refund else ZERO,
                                      "sla_credit_owed": cny(credit_debt) if credit_debt else ZERO}))
        if seller != holder:
            debt_recorded = credit_debt + fee_debt
            batch.events.append((seller, {**common, "role": "seller", "paid": cny(paid), "fee": cny(fee),
                                          "debt_recorded": cny(debt_recorded) if debt_recorded else ZERO,
                                          "debt_repaid": cny(repaid) if repaid else ZERO, "payout": cny(left)}))

    def _debt_record(self, batch: Batch, debts, debtor: int, creditor: int | None, allocation_id: int,
                     amount: int) -> None:
        """A new debt, last in the debtor's list, so its proceeds later in this batch repay it as
        the next batches' would (else they were paid out while it stayed owed)."""
        key = -(len(batch.debts) + 1)  # its id is drawn when the batch writes it (see _write)
        batch.debts.append((key, debtor, creditor, allocation_id, amount))
        debts.setdefault(debtor, []).append([key, creditor, amount])

    # writing

    def _next_ids(self, cursor, table: str, count: int) -> list[int]:
        sequence = self._sequences.get(table)
        if sequence is None:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = self._sequences[table] = cursor.fetchone()[0]
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count])
        return [row[0] for row in cursor.fetchall()]

    # COPY's text is built with one f-string per row (see copy_text). Every value is an
    # integer, a fixed word or the batch's timestamp: nothing needs escaping.

    def _write_chunk(self, cursor, *, journals, legs, first: int, settlements, payouts, stamp: str) -> None:
        """One chunk's journals (``first``: the batch index of the first), legs, settlements and payouts."""
        if journals:
            journal_ids = self._next_ids(cursor, "exchange_journal", len(journals))
            copy_text(cursor, "COPY exchange_journal (id, kind, trade_id, allocation_id, memo, created_at) FROM STDIN",
                  [f"{journal_id}\t{kind}\t{trade_id}\t{allocation_id}\t{memo}\t{stamp}\n"
                   for journal_id, (kind, trade_id, allocation_id, memo) in zip(journal_ids, journals)])
            copy_text(cursor, "COPY exchange_ledgerleg (journal_id, account_id, amount_fen) FROM STDIN",
                  [f"{journal_ids[n - first]}\t{account}\t{amount}\n" for n, account, amount in legs])
        if settlements:
            copy_text(cursor, "COPY settlement_settlement (allocation_id, trade_id, holder_id, seller_id, price_fen, scu_h, "
                          "delivered_scu_h, refunded_scu_h, paid_fen, refund_fen, fee_fen, sla_credit_bp, sla_credit_fen, "
                          "credit_debt_fen, fee_debt_fen, debt_repaid_fen, payout_fen, settled_at) FROM STDIN",
                  ["\t".join(map(str, row)) + f"\t{stamp}\n" for row in settlements])
        if payouts:
            copy_text(cursor, "COPY settlement_payout (settlement_id, organisation_id, share_bp, amount_fen) FROM STDIN",
                  [f"{allocation_id}\t{org}\t{bp}\t{fen}\n" for allocation_id, org, bp, fen in payouts])

    def _write(self, batch: Batch, stamp: str, head: tuple[int, str], writer: BulkWriter) -> None:
        """What the batch writes once its chunks are: debts, balances, provenance, event numbers.
        Worked out here while the writer stores the chunks; the statements go after them."""
        deltas: dict[int, int] = {}
        for _, account, amount in batch.legs:
            deltas[account] = deltas.get(account, 0) + amount
        if batch.debts:
            writer.submit(partial(self._write_debts, batch=batch, stamp=stamp))
        if batch.debts or batch.repaid:
            writer.submit(partial(self._write_repaid, batch=batch))
        if deltas:
            ids = sorted(deltas)
            writer.submit(lambda cursor: cursor.execute(
                "UPDATE exchange_ledgeraccount a SET balance = a.balance + d.delta "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) WHERE a.id = d.id",
                [pg_array(ids), pg_array([deltas[i] for i in ids])]))
        links = provenance_links([(asset_id, "capacity_settled", {"allocations": rows}, None)
                                  for asset_id, rows in sorted(batch.settled_by_asset.items())],
                                 head=head, recorded_at=timezone.now())
        if links:
            writer.submit(partial(provenance_copy, links=links))
        if batch.events:
            writer.submit(partial(self._number_events, events=batch.events))

    @staticmethod
    def _number_events(cursor, *, events) -> None:
        private_events_number(events, cursor=cursor)

    def _write_debts(self, cursor, *, batch: Batch, stamp: str) -> None:
        """New debts were keyed -1, -2, … while the batch was worked out; their ids are drawn
        now, before anything refers to them (the repayments, the events)."""
        new_ids = dict(zip([key for key, *_ in batch.debts], self._next_ids(cursor, "settlement_debt", len(batch.debts))))
        copy_text(cursor, "COPY settlement_debt (id, debtor_id, creditor_id, settlement_id, amount_fen, "
                          "repaid_fen, created_at) FROM STDIN",
                  [f"{new_ids[key]}\t{debtor}\t{NULL if creditor is None else creditor}\t{allocation_id}\t"
                   f"{amount}\t0\t{stamp}\n" for key, debtor, creditor, allocation_id, amount in batch.debts])
        batch.repaid = {new_ids.get(key, key): fen for key, fen in batch.repaid.items()}
        for _, event in batch.events:
            if event["type"] == "debt.repaid" and event["debt_id"] < 0:
                event["debt_id"] = new_ids[event["debt_id"]]

    @staticmethod
    def _write_repaid(cursor, *, batch: Batch) -> None:
        if batch.repaid:
            debt_ids = sorted(batch.repaid)
            cursor.execute("UPDATE settlement_debt d SET repaid_fen = d.repaid_fen + r.fen "
                           "FROM unnest(%s::bigint[], %s::bigint[]) AS r(id, fen) WHERE d.id = r.id",
                           [pg_array(debt_ids), pg_array([batch.repaid[i] for i in debt_ids])])


def settle(*, now: datetime | None = None, skip_dispute_window: bool = False) -> int:
    """One pass over every shard (tests, ``manage.py settle``)."""
    return SettlementRunner().settle_pass(now=now, skip_dispute_window=skip_dispute_window)
