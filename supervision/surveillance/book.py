"""Surveillance's own copy of the resting orders, rebuilt from the events it reads.

The rules ask what the book looked like when an order arrived (how far behind the touch
it was) and what an auction would have cleared at without someone's late orders; the
engine's books are in another process, and the order rows only say how things are now.
So each NEW, AMEND, CANCEL, trade, EXPIRE and CLOSE is applied here in inbox order.

Whether a new order rested comes from its row as it is now: rejected, IOC/FOK and market
orders, and remainders the engine cancelled at entry (self-trade prevention, the band,
no liquidity), never rest. After a restart the copy starts from the orders live at that
moment (``load``), so until those are traded or cancelled it may differ a little from
the book at the events being caught up on; rules treat orders they did not see enter as
unknown.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from supervision.surveillance.feed import Command, Trade

# Reasons the engine gives a NEW order it did not let rest.
NOT_RESTING = frozenset({"stp", "band", "ioc_remainder", "no_liquidity", "fok_not_fillable", "post_only_would_take",
                         "auction_in_progress"})


@dataclass(slots=True)
class Resting:
    order_id: int
    organisation_id: int
    side: str
    price_fen: int
    qty: int  # at entry
    remaining: int
    at: float | None  # entry (None: live when surveillance started, entry not seen)
    expires_at: float | None
    away_bps: int | None  # how far behind the touch it arrived (negative: it improved on it)


class Levels:
    """One side's price levels: total remaining per price, and a heap of prices for the best."""

    __slots__ = ("sign", "levels", "heap")

    def __init__(self, sign: int):
        self.sign = sign  # -1 for bids (best = highest), +1 for asks
        self.levels: dict[int, int] = {}
        self.heap: list[int] = []

    def add(self, price: int, qty: int) -> None:
        before = self.levels.get(price, 0)
        self.levels[price] = before + qty
        if before <= 0:
            heapq.heappush(self.heap, self.sign * price)
            if len(self.heap) > 4 * len(self.levels) + 64:  # emptied levels pile up: compact
                self.heap = [self.sign * p for p in self.levels]
                heapq.heapify(self.heap)

    def take(self, price: int, qty: int) -> None:
        left = self.levels.get(price, 0) - qty
        if left > 0:
            self.levels[price] = left
        else:
            self.levels.pop(price, None)

    def best(self) -> int | None:
        heap, levels = self.heap, self.levels
        while heap:
            price = self.sign * heap[0]
            if levels.get(price, 0) > 0:
                return price
            heapq.heappop(heap)
        return None


class InstrumentBook:
    __slots__ = ("orders", "bids", "asks", "expiries")

    def __init__(self):
        self.orders: dict[int, Resting] = {}
        self.bids = Levels(-1)
        self.asks = Levels(1)
        self.expiries: list[tuple[float, int]] = []

    def side(self, side: str) -> Levels:
        return self.bids if side == "buy" else self.asks

    def add(self, order: Resting) -> None:
        if order.order_id in self.orders:
            self.remove(order.order_id)
        self.orders[order.order_id] = order
        self.side(order.side).add(order.price_fen, order.remaining)
        if order.expires_at:
            heapq.heappush(self.expiries, (order.expires_at, order.order_id))

    def remove(self, order_id: int) -> Resting | None:
        order = self.orders.pop(order_id, None)
        if order is not None:
            self.side(order.side).take(order.price_fen, order.remaining)
        return order

    def fill(self, order_id: int, qty: int) -> None:
        order = self.orders.get(order_id)
        if order is None:
            return
        taken = min(qty, order.remaining)
        order.remaining -= taken
        self.side(order.side).take(order.price_fen, taken)
        if order.remaining <= 0:
            del self.orders[order_id]

    def expire(self, now: float) -> None:
        while self.expiries and self.expiries[0][0] <= now:
            _, order_id = heapq.heappop(self.expiries)
            order = self.orders.get(order_id)
            if order is not None and order.expires_at and order.expires_at <= now:
                self.remove(order_id)

    def touch(self, side: str) -> tuple[int | None, int | None]:
        """(best price on ``side``, best price on the other side)."""
        return (self.bids.best(), self.asks.best()) if side == "buy" else (self.asks.best(), self.bids.best())

    def indicative(self, *, tick_fen: int, ref_fen: int, leave_out=(), add=()) -> int | None:
        """The price (fen) a call auction would clear this book at, leaving out the orders
        ``leave_out`` and adding the ``Resting`` orders ``add``; None if nothing crosses."""
        import matching
        from matching.types import ORDER_DTYPE, Mode, Side

        skip = set(leave_out)
        orders = [o for o in self.orders.values() if o.order_id not in skip] + list(add)
        rows = np.zeros(len(orders), dtype=ORDER_DTYPE)
        # Time priority does not change a clearing price: entry order is enough.
        for i, o in enumerate(sorted(orders, key=lambda o: (o.at or 0, o.order_id))):
            rows[i] = (o.order_id, 0, Side.BUY if o.side == "buy" else Side.SELL, o.price_fen // tick_fen,
                       o.remaining, 0, 0)
        book = matching.Book.from_orders(rows, ref_price=ref_fen // tick_fen, band_ticks=0, mode=Mode.AUCTION)
        price, volume = book.indicative()
        return price * tick_fen if volume else None


class Books:
    """Every instrument's copy, kept up to date by ``apply_*`` in inbox order."""

    def __init__(self):
        self.books: dict[int, InstrumentBook] = {}

    def book(self, instrument_id: int) -> InstrumentBook:
        book = self.books.get(instrument_id)
        if book is None:
            book = self.books[instrument_id] = InstrumentBook()
        return book

    def load(self) -> int:
        """Start from the orders resting now (their entry unseen); return how many."""
        from exchange.models import Order

        self.books.clear()
        rows = (Order.objects.filter(status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED), type="limit")
                .values_list("id", "instrument_id", "organisation_id", "side", "price_fen", "qty", "remaining",
                             "expires_at"))
        count = 0
        for oid, instrument_id, org, side, price, qty, remaining, expires in rows.iterator(chunk_size=10_000):
            self.book(instrument_id).add(Resting(oid, org, side, price, qty, remaining, None,
                                                 expires.timestamp() if expires else None, None))
            count += 1
        return count

    def apply_new(self, command: Command) -> InstrumentBook:
        """Add a new limit order (before its trades), noting how far behind the touch it came."""
        book = self.book(command.instrument_id)
        book.expire(command.at)
        if command.type == "limit" and command.price_fen:
            same, other = book.touch(command.side)
            reference = same or other
            away = None
            if reference:
                behind = reference - command.price_fen if command.side == "buy" else command.price_fen - reference
                away = behind * 10000 // reference
            book.add(Resting(command.order_id, command.organisation_id, command.side, command.price_fen, command.qty,
                             command.qty, command.order_at, command.expires_at, away))
        return book

    def settle_new(self, command: Command) -> None:
        """After its trades: take the new order out again if it did not rest."""
        rested = (command.type == "limit" and command.tif in ("GTC", "GTD") and command.status != "rejected"
                  and not (command.status in ("cancelled", "expired") and command.reason in NOT_RESTING))
        if not rested:
            self.book(command.instrument_id).remove(command.order_id)

    def apply_amend(self, command: Command) -> tuple[Resting | None, int]:
        """Apply an amendment; return the order as it now rests (None if unknown) and the
        quantity it gave up."""
        book = self.book(command.instrument_id)
        order = book.remove(command.order_id)
        if order is None:
            return None, 0
        before = order.remaining
        if command.new_price_fen:
            order.price_fen = command.new_price_fen
        if command.new_qty and command.new_qty < order.remaining:
            order.remaining = command.new_qty
        book.add(order)
        return order, before - order.remaining

    def apply_cancel(self, command: Command) -> Resting | None:
        return self.book(command.instrument_id).remove(command.order_id)

    def apply_trade(self, trade: Trade) -> None:
        book = self.book(trade.instrument_id)
        book.fill(trade.buy_order_id, trade.qty)
        book.fill(trade.sell_order_id, trade.qty)

    def apply_expire(self, command: Command) -> None:
        self.book(command.instrument_id).expire(command.at)

    def apply_close(self, command: Command) -> None:
        self.books.pop(command.instrument_id, None)
