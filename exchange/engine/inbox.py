"""Reading the inbox and the books: the row types of pending commands and live orders, the
pending-command query, and (re)building the books from the open orders in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.db.models.expressions import RawSQL

import matching
from exchange import market_data
from exchange.db import pg_array
from exchange.models import Instrument, LedgerAccount, Order
from matching.types import Action, Mode, Side

ACTIVE_STATES = (Instrument.State.PRE_OPEN, Instrument.State.CONTINUOUS, Instrument.State.AUCTION, Instrument.State.HALTED)
# The book collects orders without matching them: before an auction uncrosses, and while halted.
COLLECTING_STATES = (Instrument.State.PRE_OPEN, Instrument.State.AUCTION, Instrument.State.HALTED)


def micros(dt) -> int:
    return int(dt.timestamp() * 1_000_000)


def band_ticks(instrument: Instrument) -> int:
    if not instrument.reference_price_fen:
        return 0
    return max(1, instrument.reference_price_fen * instrument.band_bps // 10000) // instrument.tick_fen


# An order's expiry as the books take it: epoch microseconds, 0 for none, computed by
# PostgreSQL so that no stored value can fail to convert (a timestamp past year 9999, or
# infinity, is valid there and not in Python). Clamped to [1, the end of year 9999 UTC]: a
# GTD expiry that far away never comes, and one before 1970 stays in the past, so the book
# refuses it as expired rather than reading 0 as "no expiry".
# (GREATEST and LEAST skip NULLs, hence the CASE.)
EXPIRY_US_SQL = ("CASE WHEN {column} IS NULL THEN 0 ELSE LEAST(GREATEST(floor(extract(epoch FROM {column}) "
                 "* 1000000), 1), 253402300799999999)::bigint END")

PENDING_SQL = """
    SELECT i.seq, i.instrument_id, i.action, i.order_id, i.new_price_fen, i.new_qty, i.extra_hold_fen,
           i.new_hold_per_lot_fen, o.organisation_id, o.owner_id, o.side, o.type, o.tif, o.post_only, o.price_fen,
           o.remaining, {expiry}, o.protect_ticks, o.hold_per_lot_fen, o.held_fen
    FROM exchange_inboxcommand i LEFT JOIN exchange_order o ON o.id = i.order_id
    WHERE i.seq = ANY(ARRAY((SELECT seq FROM exchange_inboxcommand
                             WHERE processed_at IS NULL{shard} ORDER BY seq LIMIT %(reach)s)
                            EXCEPT SELECT unnest(%(exclude)s::bigint[])
                            ORDER BY 1 LIMIT %(limit)s))
    ORDER BY i.seq
""".replace("{expiry}", EXPIRY_US_SQL.format(column="o.expires_at"))


@dataclass(slots=True)
class OrderRow:
    """The order a NEW command carries, as the engine needs it."""

    id: int
    organisation_id: int
    owner_id: int
    side: str
    type: str
    tif: str
    post_only: bool
    price_fen: int | None
    remaining: int
    expiry_us: int  # epoch microseconds, 0 for none (EXPIRY_US_SQL)
    protect_ticks: int
    hold_per_lot_fen: int
    held_fen: int

    def live(self, instrument_id: int) -> LiveOrder:
        return LiveOrder(self.id, self.organisation_id, instrument_id, self.side, self.hold_per_lot_fen,
                         self.remaining, self.held_fen)


@dataclass(slots=True)
class PendingCommand:
    """An unprocessed inbox row (plain values: a batch holds thousands)."""

    seq: int
    instrument_id: int
    action: str
    order_id: int | None
    new_price_fen: int | None
    new_qty: int | None
    extra_hold_fen: int
    new_hold_per_lot_fen: int | None
    order: OrderRow | None = None


@dataclass(slots=True)
class LiveOrder:
    """What the runner keeps in memory about an order in its books."""

    id: int
    organisation_id: int
    instrument_id: int
    side: str
    hold_per_lot_fen: int
    remaining: int
    held_fen: int


class Inbox:
    """The runner's reading stage (a part of ``EngineRunner``)."""

    def load(self) -> None:
        """(Re)build every book of the shard from the open orders in PostgreSQL."""
        matching.warm_up()  # the compiled code loaded now, not in the first batch's transaction
        self.books.clear()
        self.instruments.clear()
        self.live.clear()
        # Every ledger account in one read; the few created later are looked up one by one.
        self._accounts = {(org, kind): account_id for account_id, org, kind
                          in LedgerAccount.objects.values_list("id", "organisation_id", "kind")}
        self.depth = market_data.DepthTracker()
        for instrument in Instrument.objects.filter(state__in=ACTIVE_STATES).order_by("id"):
            if self.owns(instrument.id):
                self._load_instrument(instrument)

    def _load_instrument(self, instrument: Instrument) -> None:
        rows = list(
            Order.objects.filter(
                instrument=instrument, status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)
            )
            .order_by("priority_seq", "id")
            .annotate(expiry_us=RawSQL(EXPIRY_US_SQL.format(column='"exchange_order"."expires_at"'), ()))
            .values_list("id", "owner_id", "side", "price_fen", "remaining", "expiry_us", "post_only",
                         "organisation_id", "hold_per_lot_fen", "held_fen")
        )
        resting = np.zeros(len(rows), dtype=matching.types.ORDER_DTYPE)
        for i, (oid, owner, side, price, remaining, expiry_us, post_only, org, per_lot, held) in enumerate(rows):
            resting[i] = (oid, owner, Side.BUY if side == "buy" else Side.SELL, price // instrument.tick_fen,
                          remaining, expiry_us, int(post_only))
            self.live[oid] = LiveOrder(oid, org, instrument.id, side, per_lot, remaining, held)
        collecting = instrument.state in COLLECTING_STATES
        self.books[instrument.id] = matching.Book.from_orders(
            resting,
            ref_price=(instrument.reference_price_fen or 0) // instrument.tick_fen,
            band_ticks=band_ticks(instrument),
            mode=Mode.AUCTION if collecting else Mode.CONTINUOUS,
        )
        self.instruments[instrument.id] = instrument

    def _read_halts(self, instrument_ids) -> None:
        """Bring the books' instruments up to date with halts, resumptions and price bands.

        Halting, resuming and the band are the regulator's, written to the instrument row
        outside the inbox; read before every batch, a halt stops matching for every command
        processed after it commits, orders that were already waiting in the inbox included. A
        halted book collects (auction mode) and stays so on resume, whose call auction
        uncrosses it. Only these are read: every other state is the engine's own and may be
        ahead of the row while the previous batch is still being written."""
        halted = Instrument.State.HALTED
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, state, auction_ends_at, band_bps FROM exchange_instrument WHERE id = ANY(%s)",
                           [pg_array(sorted(instrument_ids))])
            rows = cursor.fetchall()
        for instrument_id, state, auction_ends_at, band_bps in rows:
            instrument = self.instruments[instrument_id]
            if instrument.state == Instrument.State.CLOSED:
                continue
            book = self.books[instrument_id]
            if band_bps != instrument.band_bps:
                instrument.band_bps = band_bps
                if instrument.reference_price_fen:  # no reference yet: no band to move
                    book.process(matching.types.make_commands([{
                        "action": Action.SET_BAND, "price": instrument.reference_price_fen // instrument.tick_fen,
                        "qty": band_ticks(instrument)}]))
            if (state == halted) == (instrument.state == halted):
                continue
            instrument.state, instrument.auction_ends_at = state, auction_ends_at
            if state == halted and book.mode == Mode.CONTINUOUS:
                book.process(matching.types.make_commands([{"action": Action.SET_AUCTION}]))

    def book_for(self, instrument_id: int) -> matching.Book:
        if instrument_id not in self.books:
            self._load_instrument(Instrument.objects.get(pk=instrument_id))
        return self.books[instrument_id]

    def _pending(self, exclude: list[PendingCommand] | tuple = ()) -> list[PendingCommand]:
        """The next batch of unprocessed commands in sequence order, leaving out ``exclude`` (the
        batch being written)."""
        # = ANY(ARRAY(…)) keeps the planner on the partial index (IN (SELECT …) scanned the table);
        # EXCEPT hashes the excluded seqs (seq <> ALL(…) compared each row with every one of them).
        shard = " AND instrument_id %% %(shards)s = %(shard)s" if self.shards > 1 else ""
        params = {"shards": self.shards, "shard": self.shard, "reach": self.batch_size + len(exclude),
                  "exclude": pg_array([c.seq for c in exclude]), "limit": self.batch_size}
        with connection.cursor() as cursor:
            cursor.execute(PENDING_SQL.format(shard=shard), params)
            rows = cursor.fetchall()
        return [
            PendingCommand(*row[:8], order=OrderRow(row[3], *row[8:]) if row[3] is not None else None)
            for row in rows
        ]
