"""``Book``: one instrument's compiled order book behind a small Python class.

The class owns the kernel's arena and an event buffer, calls ``kernel.process_batch``
once per batch and handles the kernel's statuses: on ``NEED_*`` it grows the event
buffer, the order pool or the ladder and calls again from the same command, so no
command is ever dropped or half-applied; on ``DROP_IDS`` it finishes an auction's
bookkeeping and carries on.
"""

from __future__ import annotations

import numpy as np

from . import kernel as k
from .snapshot import check_book_params, SNAPSHOT_SCALARS, BookInvariantError, check_resting_orders
from .types import (
    COMMAND_DTYPE,
    DEFAULT_MAX_SPAN_TICKS,
    EVENT_DTYPE,
    LEVEL_DTYPE,
    ORDER_DTYPE,
    Mode,
    Side,
    Stp,
)

_MIN_SPAN = 1024  # ladder rows to start with (64 KiB); grows to fit the book
_INVARIANTS = {
    k.BAD_FIFO: "price level FIFO links are inconsistent",
    k.BAD_LEVEL_TOTAL: "level quantity or count differs from the sum of its orders",
    k.BAD_ORDER: "resting order has a bad id, qty, price or side",
    k.BAD_CURSOR: "best bid/ask cursor does not point at the best level",
    k.BAD_COUNT: "per-side order count is wrong",
    k.BAD_CROSSED: "continuous book is crossed",
    k.BAD_MAP: "order id map disagrees with the book",
    k.BAD_FREE: "free list is inconsistent with live orders",
    k.BAD_HEAP: "GTD expiry heap is inconsistent",
    k.BAD_EXPIRED: "a GTD order outlived its expiry",
}


class Book:
    """Order book of one instrument, matched by the numba kernel.

    ref_price       reference price for the band, ticks (0: none yet, band inactive).
    band_ticks      continuous trades must stay within ref_price ± band_ticks (0: off).
    stp_mode        Stp code applied when a taker meets its own owner's order.
    capacity        initial order pool size; grows by doubling when full.
    max_span_ticks  widest distance between resting prices; a resting order further
                    from the rest of the book is rejected with PRICE_OUT_OF_RANGE. The
                    ladder costs 64 bytes per tick of span, so this bounds its memory.
    mode            Mode to start in (an opening auction starts in AUCTION).
    """

    def __init__(
        self,
        *,
        ref_price: int = 0,
        band_ticks: int = 0,
        stp_mode: int = Stp.EXPIRE_TAKER,
        capacity: int = 1024,
        max_span_ticks: int = DEFAULT_MAX_SPAN_TICKS,
        mode: int = Mode.CONTINUOUS,
    ) -> None:
        check_book_params(ref_price=ref_price, band_ticks=band_ticks, stp_mode=stp_mode, capacity=capacity,
                          max_span_ticks=max_span_ticks, mode=mode)
        span = min(_MIN_SPAN, max_span_ticks)
        base = max(1, ref_price - span // 2)
        self._b = k.new_book(
            capacity=capacity,
            span=span,
            base=base,
            ref_price=ref_price,
            band_ticks=band_ticks,
            stp_mode=int(stp_mode),
            max_span_ticks=max_span_ticks,
            mode=int(mode),
        )
        self._ev = np.empty((1024, k.N_EVENT_COLS), dtype=np.int64)
        self._no_latency = np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------ processing

    def process(self, commands: np.ndarray, *, latencies: np.ndarray | None = None) -> np.ndarray:
        """Apply a batch of COMMAND_DTYPE rows in order; return their EVENT_DTYPE events.

        ``latencies``, if given (int64, one per command), receives the cycle-counter
        ticks each command took inside the compiled loop (see ``matching.clock``).
        """
        cmds = _as_matrix(commands)
        lat = self._no_latency if latencies is None else latencies
        if latencies is not None and (latencies.dtype != np.int64 or latencies.shape != (len(cmds),)):
            raise ValueError("latencies must be an int64 array with one entry per command")
        i = ne = 0
        while True:
            status, i, ne = k.process_batch(cmds, i, self._ev, ne, self._b, lat)
            if status == k.OK:
                break
            if status == k.DROP_IDS:
                k.drop_filled_ids(self._b, self._ev, int(self._b[k.S_DROP_FROM]), ne)
            elif status == k.NEED_EVENTS:
                self.reserve_events(ne + len(self) + k.EVENT_SLACK + len(cmds) - i)
            elif status == k.NEED_ORDERS:
                self._relayout(capacity=2 * int(self._b[k.S_CAP]))
            else:
                self._fit_ladder(int(self._b[k.S_NEED_LO]), int(self._b[k.S_NEED_HI]))
        return self._ev[:ne].copy().view(EVENT_DTYPE).reshape(ne)

    def reserve_events(self, rows: int) -> None:
        """Make the event buffer hold at least ``rows`` events (grows by doubling); lets a
        caller that knows a big batch is coming (an auction) pay for the memory up front."""
        if rows <= len(self._ev):
            return
        new = np.empty((max(rows, 2 * len(self._ev)), k.N_EVENT_COLS), dtype=np.int64)
        new[: len(self._ev)] = self._ev
        self._ev = new

    def _relayout(self, *, capacity: int | None = None, span: int | None = None, base: int | None = None) -> None:
        b = self._b
        new = k.new_arena(
            b,
            capacity=int(b[k.S_CAP]) if capacity is None else capacity,
            span=int(b[k.S_SPAN]) if span is None else span,
            base=int(b[k.S_BASE]) if base is None else base,
        )
        k.relayout(b, new)
        self._b = new

    def _fit_ladder(self, lo: int, hi: int) -> None:
        """Re-base (and widen, doubling, up to max_span_ticks) the ladder to cover
        [lo, hi] with room to spare on both sides, so a drifting market re-bases rarely."""
        extent = hi - lo + 1
        max_span = int(self._b[k.S_MAX_SPAN])
        span = min(max_span, max(int(self._b[k.S_SPAN]), 1 << (2 * extent - 1).bit_length()))
        self._relayout(span=span, base=max(1, lo - (span - extent) // 2))

    # ---------------------------------------------------------------- inspection

    def __len__(self) -> int:
        """Number of resting orders."""
        return int(self._b[k.S_N_BID] + self._b[k.S_N_ASK])

    @property
    def mode(self) -> Mode:
        return Mode(int(self._b[k.S_MODE]))

    @property
    def ref_price(self) -> int:
        return int(self._b[k.S_REF])

    @property
    def band_ticks(self) -> int:
        return int(self._b[k.S_BAND])

    @property
    def stp_mode(self) -> Stp:
        return Stp(int(self._b[k.S_STP]))

    def best_bid(self) -> int | None:
        """Best bid price in ticks, or None."""
        row = int(self._b[k.S_BEST_BID])
        return None if row < 0 else int(self._b[k.S_BASE]) + row

    def best_ask(self) -> int | None:
        row = int(self._b[k.S_BEST_ASK])
        return None if row < 0 else int(self._b[k.S_BASE]) + row

    def depth(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``n`` levels per side as LEVEL_DTYPE arrays (price, lots, orders), best first."""
        sides = []
        for side in (Side.BUY, Side.SELL):
            out = np.zeros((n, 3), dtype=np.int64)
            got = k.depth(self._b, int(side), n, out)
            sides.append(out[:got].copy().view(LEVEL_DTYPE).reshape(got))
        return sides[0], sides[1]

    def orders(self) -> np.ndarray:
        """Resting orders (ORDER_DTYPE): bids best first, then asks best first, each
        price level in time order."""
        out = np.zeros((len(self), len(ORDER_DTYPE.names)), dtype=np.int64)
        k.resting_orders(self._b, out)
        return out.view(ORDER_DTYPE).reshape(len(out))

    def indicative(self) -> tuple[int, int]:
        """(price, lots) an UNCROSS would clear at now; (0, 0) if nothing crosses."""
        price, volume = k.auction_price(self._b)
        return int(price), int(volume)

    def validate(self) -> None:
        """Raise BookInvariantError if any internal invariant is broken."""
        scratch = np.zeros(int(self._b[k.S_CAP]), dtype=np.bool_), np.zeros(2, np.int64), np.zeros(2, np.int64)
        code, where = k.validate(self._b, *scratch)
        if code:
            raise BookInvariantError(f"{_INVARIANTS[code]} (at {where})")

    # ------------------------------------------------------------ snapshot/restore

    def snapshot(self) -> dict[str, np.ndarray]:
        """The whole book as plain arrays: ``orders`` (ORDER_DTYPE, priority order) and
        0-d int64 arrays for the scalars in SNAPSHOT_SCALARS."""
        snap = {name: np.asarray(value, dtype=np.int64) for name, value in self._scalars().items()}
        snap["orders"] = self.orders()
        return snap

    def _scalars(self) -> dict[str, int]:
        b = self._b
        return {
            "mode": int(b[k.S_MODE]),
            "ref_price": int(b[k.S_REF]),
            "band_ticks": int(b[k.S_BAND]),
            "stp_mode": int(b[k.S_STP]),
            "max_span_ticks": int(b[k.S_MAX_SPAN]),
            "last_ts": int(b[k.S_LAST_TS]),
        }

    @classmethod
    def restore(cls, snapshot: dict[str, np.ndarray]) -> Book:
        """Rebuild a book from ``snapshot()`` output."""
        scalars = {name: int(snapshot[name]) for name in SNAPSHOT_SCALARS}
        last_ts = scalars.pop("last_ts")
        book = cls.from_orders(snapshot["orders"], **scalars)
        book._b[k.S_LAST_TS] = last_ts
        return book

    @classmethod
    def from_orders(
        cls,
        orders: np.ndarray,
        *,
        ref_price: int = 0,
        band_ticks: int = 0,
        stp_mode: int = Stp.EXPIRE_TAKER,
        max_span_ticks: int = DEFAULT_MAX_SPAN_TICKS,
        mode: int = Mode.CONTINUOUS,
        capacity: int = 1024,
    ) -> Book:
        """Rebuild a book from resting orders (ORDER_DTYPE) in time order, as the exchange
        loads them from its database; raises ValueError on an impossible book."""
        rows = check_resting_orders(orders, mode=mode, max_span_ticks=max_span_ticks)
        book = cls(
            ref_price=ref_price,
            band_ticks=band_ticks,
            stp_mode=stp_mode,
            capacity=max(capacity, len(rows)),
            max_span_ticks=max_span_ticks,
            mode=mode,
        )
        if len(rows):
            book._fit_ladder(int(rows["price"].min()), int(rows["price"].max()))
            # Rest them level by level (a stable sort keeps each level's time order):
            # every FIFO then occupies consecutive pool slots, so walking it later reads
            # memory in sequence instead of missing the cache on every order.
            rows = rows[np.lexsort((rows["price"], rows["side"]))]
            matrix = rows.view(np.int64).reshape(len(rows), len(ORDER_DTYPE.names))
            k.load_orders(book._b, matrix)
        return book


def _as_matrix(commands: np.ndarray) -> np.ndarray:
    if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE or commands.ndim != 1:
        raise TypeError("commands must be a one-dimensional numpy array of COMMAND_DTYPE")
    commands = np.ascontiguousarray(commands)
    return commands.view(np.int64).reshape(len(commands), k.N_CMD_COLS)
