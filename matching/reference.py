"""``ReferenceBook``: the same book as ``Book``, written to be read rather than to be fast.

Dicts of price -> list of orders, linear scans, sorting where a rule says "in order".
Tests feed both books the same commands and require identical events and final books,
so every rule here is the specification the compiled kernel must meet.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from .snapshot import check_book_params, SNAPSHOT_SCALARS, BookInvariantError, check_resting_orders
from .types import (
    COMMAND_DTYPE,
    DEFAULT_MAX_SPAN_TICKS,
    EVENT_DTYPE,
    LEVEL_DTYPE,
    MAX_PRICE,
    MAX_QTY,
    ORDER_DTYPE,
    Action,
    EventType,
    Mode,
    Reason,
    Side,
    Stp,
    Tif,
)

BUY, SELL = Side.BUY, Side.SELL


@dataclass
class _Order:
    order_id: int
    owner: int
    side: int
    price: int
    qty: int
    expiry: int  # 0 for GTC
    post_only: int


class ReferenceBook:
    """Pure-Python order book with the interface and behaviour of ``matching.Book``.

    ``capacity`` is accepted for interface compatibility and ignored.
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
        self._ref = ref_price
        self._band = band_ticks
        self._stp = int(stp_mode)
        self._max_span = max_span_ticks
        self._mode = int(mode)
        self._last_ts = 0
        # side -> price -> orders at that price, oldest first
        self._levels: dict[int, dict[int, list[_Order]]] = {BUY: {}, SELL: {}}
        self._by_id: dict[int, _Order] = {}
        # (expiry, order_id) of every GTD order that went into the book; entries of
        # orders that left it are skipped when they come up (lazy deletion).
        self._expiries: list[tuple[int, int]] = []
        self._events: list[tuple[int, ...]] = []
        self._cmd_index = 0

    # ------------------------------------------------------------------ processing

    def process(self, commands: np.ndarray) -> np.ndarray:
        """Apply a batch of COMMAND_DTYPE rows in order; return their EVENT_DTYPE events."""
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE or commands.ndim != 1:
            raise TypeError("commands must be a one-dimensional numpy array of COMMAND_DTYPE")
        self._events = []
        for i, row in enumerate(commands.tolist()):
            self._cmd_index = i
            self._command(dict(zip(COMMAND_DTYPE.names, row, strict=True)))
        out = np.array(self._events, dtype=np.int64).reshape(len(self._events), len(EVENT_DTYPE.names))
        return out.view(EVENT_DTYPE).reshape(len(out))

    def _command(self, c: dict[str, int]) -> None:
        self._last_ts = c["ts"]
        self._expire_due(c["ts"])
        action = c["action"]
        if action == Action.LIMIT:
            self._limit(c)
        elif action == Action.MARKET:
            self._market(c)
        elif action == Action.CANCEL:
            self._cancel(c)
        elif action == Action.AMEND:
            self._amend(c)
        elif action == Action.EXPIRE:
            pass  # the sweep above is the whole command
        elif action == Action.SET_AUCTION:
            if self._mode == Mode.AUCTION:
                self._reject(c, Reason.WRONG_MODE)
            else:
                self._mode = Mode.AUCTION
                self._event(EventType.AUCTION_STARTED)
        elif action == Action.UNCROSS:
            if self._mode != Mode.AUCTION:
                self._reject(c, Reason.WRONG_MODE)
            else:
                self._uncross()
        elif action == Action.SET_BAND:
            if not 0 <= c["price"] <= MAX_PRICE:
                self._reject(c, Reason.INVALID_PRICE)
            elif not 0 <= c["qty"] <= MAX_PRICE:
                self._reject(c, Reason.INVALID_QTY)
            else:
                self._ref, self._band = c["price"], c["qty"]
                self._event(EventType.BAND_SET, price=self._ref, qty=self._band)
        else:
            self._reject(c, Reason.INVALID_ACTION)

    # ------------------------------------------------------------------- events

    def _event(self, typ: int, *, order_id=0, side=0, price=0, qty=0, remaining=0, reason=0) -> None:
        self._events.append(
            (int(typ), self._cmd_index, order_id, int(side), price, qty, remaining, int(reason), 0, 0, 0, 0, 0, 0)
        )

    def _order_event(self, typ: int, order: _Order, qty: int, remaining: int, reason: int) -> None:
        self._event(
            typ,
            order_id=order.order_id,
            side=order.side,
            price=order.price,
            qty=qty,
            remaining=remaining,
            reason=reason,
        )

    def _trade(self, *, taker_id, taker_owner, side, price, qty, taker_left, maker: _Order, reason) -> None:
        self._events.append(
            (
                int(EventType.TRADE), self._cmd_index, taker_id, int(side), price, qty, taker_left, int(reason),
                maker.order_id, taker_id, maker.owner, taker_owner, maker.qty, taker_left,
            )
        )  # fmt: skip

    def _reject(self, c: dict[str, int], reason: int) -> None:
        """A refused command: echo its own fields."""
        self._event(
            EventType.REJECTED, order_id=c["order_id"], side=c["side"], price=c["price"], qty=c["qty"], reason=reason
        )

    # --------------------------------------------------------------- book basics

    def _best(self, side: int) -> int | None:
        prices = self._levels[side]
        if not prices:
            return None
        return max(prices) if side == BUY else min(prices)

    def _in_priority_order(self, side: int) -> list[_Order]:
        prices = sorted(self._levels[side], reverse=(side == BUY))
        return [order for price in prices for order in self._levels[side][price]]

    def _add(self, order: _Order) -> None:
        self._levels[order.side].setdefault(order.price, []).append(order)
        self._by_id[order.order_id] = order
        if order.expiry:
            heapq.heappush(self._expiries, (order.expiry, order.order_id))

    def _remove(self, order: _Order) -> None:
        queue = self._levels[order.side][order.price]
        queue.remove(order)
        if not queue:
            del self._levels[order.side][order.price]
        del self._by_id[order.order_id]

    def _expire_due(self, ts: int) -> None:
        """Expire GTD orders with expiry <= ts, earliest expiry first, then lowest id."""
        while self._expiries and self._expiries[0][0] <= ts:
            expiry, order_id = heapq.heappop(self._expiries)
            order = self._by_id.get(order_id)
            if order is not None and order.expiry == expiry:
                self._order_event(EventType.EXPIRED, order, order.qty, 0, Reason.NONE)
                self._remove(order)

    def _crosses(self, side: int, price: int) -> bool:
        best = self._best(1 - side)
        if best is None:
            return False
        return price >= best if side == BUY else price <= best

    def _outside_band(self, price: int) -> bool:
        if self._band <= 0 or self._ref <= 0:
            return False
        return not self._ref - self._band <= price <= self._ref + self._band

    def _fits_span(self, price: int) -> bool:
        prices = [*self._levels[BUY], *self._levels[SELL], price]
        return max(prices) - min(prices) + 1 <= self._max_span

    @staticmethod
    def _beyond(side: int, price: int, limit: int) -> bool:
        return price > limit if side == BUY else price < limit

    # ----------------------------------------------------------------- commands

    def _limit(self, c: dict[str, int]) -> None:
        tif, post, expiry = c["tif"], c["post_only"] != 0, c["expiry"]
        if c["order_id"] <= 0:
            return self._reject(c, Reason.INVALID_ORDER_ID)
        if c["side"] not in (BUY, SELL):
            return self._reject(c, Reason.INVALID_SIDE)
        if not 1 <= c["qty"] <= MAX_QTY:
            return self._reject(c, Reason.INVALID_QTY)
        if not 1 <= c["price"] <= MAX_PRICE:
            return self._reject(c, Reason.INVALID_PRICE)
        if tif not in tuple(Tif) or (post and tif in (Tif.IOC, Tif.FOK)):
            return self._reject(c, Reason.INVALID_TIF)
        if tif == Tif.GTD:
            if expiry <= c["ts"]:
                return self._reject(c, Reason.INVALID_EXPIRY)
        else:
            expiry = 0
        if c["order_id"] in self._by_id:
            return self._reject(c, Reason.DUPLICATE_ORDER_ID)
        if tif in (Tif.IOC, Tif.FOK):
            if self._mode == Mode.AUCTION:
                return self._reject(c, Reason.AUCTION_IN_PROGRESS)
        elif not self._fits_span(c["price"]):
            return self._reject(c, Reason.PRICE_OUT_OF_RANGE)
        self._enter(
            c["order_id"], c["owner"], c["side"], c["price"], c["qty"], tif, post, expiry,
            is_market=False, is_amend=False,
        )  # fmt: skip
        return None

    def _market(self, c: dict[str, int]) -> None:
        if c["order_id"] <= 0:
            return self._reject(c, Reason.INVALID_ORDER_ID)
        if c["side"] not in (BUY, SELL):
            return self._reject(c, Reason.INVALID_SIDE)
        if not 1 <= c["qty"] <= MAX_QTY:
            return self._reject(c, Reason.INVALID_QTY)
        if c["post_only"] != 0:
            return self._reject(c, Reason.INVALID_TIF)
        if not 0 <= c["protect_ticks"] <= MAX_PRICE:
            return self._reject(c, Reason.INVALID_PROTECTION)
        if c["order_id"] in self._by_id:
            return self._reject(c, Reason.DUPLICATE_ORDER_ID)
        if self._mode == Mode.AUCTION:
            return self._reject(c, Reason.AUCTION_IN_PROGRESS)
        best = self._best(1 - c["side"])
        if best is None:
            return self._reject(c, Reason.NO_LIQUIDITY)
        if c["side"] == BUY:
            limit = best + c["protect_ticks"]
        else:
            limit = max(best - c["protect_ticks"], 1)
        tif = Tif.FOK if c["tif"] == Tif.FOK else Tif.IOC
        self._enter(
            c["order_id"], c["owner"], c["side"], limit, c["qty"], tif, False, 0, is_market=True, is_amend=False
        )
        return None

    def _cancel(self, c: dict[str, int]) -> None:
        order = self._by_id.get(c["order_id"])
        if order is None:
            return self._reject(c, Reason.UNKNOWN_ORDER)
        self._order_event(EventType.CANCELLED, order, order.qty, 0, Reason.USER)
        self._remove(order)
        return None

    def _amend(self, c: dict[str, int]) -> None:
        order = self._by_id.get(c["order_id"])
        if order is None:
            return self._reject(c, Reason.UNKNOWN_ORDER)
        if not 0 <= c["price"] <= MAX_PRICE:
            return self._reject(c, Reason.INVALID_PRICE)
        if not 0 <= c["qty"] <= MAX_QTY:
            return self._reject(c, Reason.INVALID_QTY)
        new_price = c["price"] or order.price
        new_qty = c["qty"] or order.qty
        if new_price == order.price:
            if new_qty <= order.qty:
                order.qty = new_qty
                self._order_event(EventType.AMENDED, order, new_qty, new_qty, Reason.NONE)
            else:
                self._remove(order)
                order.qty = new_qty
                self._add(order)
                self._order_event(EventType.AMENDED, order, new_qty, new_qty, Reason.LOST_PRIORITY)
            return None
        if not self._fits_span(new_price):
            return self._reject(c, Reason.PRICE_OUT_OF_RANGE)
        if order.post_only and self._mode == Mode.CONTINUOUS and self._crosses(order.side, new_price):
            return self._reject(c, Reason.POST_ONLY_WOULD_TAKE)
        self._remove(order)
        self._event(
            EventType.AMENDED,
            order_id=order.order_id,
            side=order.side,
            price=new_price,
            qty=new_qty,
            remaining=new_qty,
            reason=Reason.LOST_PRIORITY,
        )
        tif = Tif.GTD if order.expiry else Tif.GTC
        self._enter(
            order.order_id, order.owner, order.side, new_price, new_qty, tif, bool(order.post_only), order.expiry,
            is_market=False, is_amend=True,
        )  # fmt: skip
        return None

    # ----------------------------------------------------------------- matching

    def _enter(self, order_id, owner, side, price, qty, tif, post, expiry, *, is_market, is_amend) -> None:
        """Trade an accepted order, then rest its remainder or cancel it."""
        crosses = self._mode == Mode.CONTINUOUS and self._crosses(side, price)
        if not is_amend:
            rejected = dict(order_id=order_id, side=side, price=price, qty=qty)
            if post and crosses:
                return self._event(EventType.REJECTED, reason=Reason.POST_ONLY_WOULD_TAKE, **rejected)
            if tif == Tif.FOK and not self._fok_fillable(side, price, qty, owner):
                return self._event(EventType.REJECTED, reason=Reason.FOK_NOT_FILLABLE, **rejected)
            self._event(EventType.ACCEPTED, order_id=order_id, side=side, price=price, qty=qty, remaining=qty)
        stop = None
        if crosses:
            qty, stop = self._take(order_id, owner, side, price, qty)
        if qty == 0:
            return None
        left = dict(order_id=order_id, side=side, price=price, qty=qty, remaining=0)
        if stop == Reason.STP:
            return self._event(EventType.CANCELLED, reason=Reason.STP, **left)
        if is_market or tif in (Tif.IOC, Tif.FOK):
            if stop == Reason.BAND:
                reason = Reason.BAND
            elif is_market:
                reason = Reason.NO_LIQUIDITY
            else:
                reason = Reason.IOC_REMAINDER
            return self._event(EventType.CANCELLED, reason=reason, **left)
        self._add(_Order(order_id, owner, side, price, qty, expiry, int(post)))
        return None

    def _fok_fillable(self, side: int, limit: int, qty: int, owner: int) -> bool:
        """Could the whole qty trade now, within the limit and band, before any STP stop?"""
        for maker in self._in_priority_order(1 - side):
            if self._beyond(side, maker.price, limit) or self._outside_band(maker.price):
                return False
            if maker.owner == owner:
                if self._stp != Stp.EXPIRE_MAKER:
                    return False
                continue
            qty -= maker.qty
            if qty <= 0:
                return True
        return False

    def _take(self, order_id, owner, side, limit, qty) -> tuple[int, int | None]:
        """Trade against the best opposite orders, best price first, oldest first.

        Returns the lots left and why it stopped early (Reason.STP / Reason.BAND / None).
        """
        while qty > 0:
            price = self._best(1 - side)
            if price is None or self._beyond(side, price, limit):
                break
            if self._outside_band(price):
                self._event(
                    EventType.VOLATILITY, order_id=order_id, side=side, price=price, qty=qty, remaining=qty,
                    reason=Reason.BAND,
                )  # fmt: skip
                self._mode = Mode.AUCTION
                return qty, Reason.BAND
            for maker in list(self._levels[1 - side][price]):
                if qty == 0:
                    break
                if maker.owner == owner:
                    if self._stp == Stp.EXPIRE_TAKER:
                        return qty, Reason.STP
                    self._order_event(EventType.CANCELLED, maker, maker.qty, 0, Reason.STP)
                    self._remove(maker)
                    if self._stp == Stp.EXPIRE_BOTH:
                        return qty, Reason.STP
                    continue
                fill = min(qty, maker.qty)
                qty -= fill
                maker.qty -= fill
                self._trade(
                    taker_id=order_id, taker_owner=owner, side=side, price=price, qty=fill, taker_left=qty,
                    maker=maker, reason=Reason.NONE,
                )  # fmt: skip
                if maker.qty == 0:
                    self._remove(maker)
        return qty, None

    # ------------------------------------------------------------------ auction

    def indicative(self) -> tuple[int, int]:
        """(price, lots) an UNCROSS would clear at now; (0, 0) if nothing crosses."""
        best_bid, best_ask = self._best(BUY), self._best(SELL)
        if best_bid is None or best_ask is None or best_bid < best_ask:
            return 0, 0
        candidates = []
        for p in range(best_ask, best_bid + 1):
            demand = sum(o.qty for o in self._by_id.values() if o.side == BUY and o.price >= p)
            supply = sum(o.qty for o in self._by_id.values() if o.side == SELL and o.price <= p)
            candidates.append((p, min(demand, supply), demand - supply))
        most = max(volume for _, volume, _ in candidates)
        candidates = [c for c in candidates if c[1] == most]
        least = min(abs(imbalance) for _, _, imbalance in candidates)
        candidates = [c for c in candidates if abs(c[2]) == least]
        if all(imbalance > 0 for _, _, imbalance in candidates):
            return max(p for p, _, _ in candidates), most
        if all(imbalance < 0 for _, _, imbalance in candidates):
            return min(p for p, _, _ in candidates), most
        nearest = min(candidates, key=lambda c: (abs(c[0] - self._ref), c[0]))
        return nearest[0], most

    def _uncross(self) -> None:
        price, volume = self.indicative()
        self._mode = Mode.CONTINUOUS
        if volume == 0:
            self._event(EventType.AUCTION_UNCROSSED)
            return
        left = volume
        while left:
            buyer = self._levels[BUY][self._best(BUY)][0]
            seller = self._levels[SELL][self._best(SELL)][0]
            fill = min(buyer.qty, seller.qty, left)
            buyer.qty -= fill
            seller.qty -= fill
            left -= fill
            self._trade(
                taker_id=buyer.order_id, taker_owner=buyer.owner, side=BUY, price=price, qty=fill,
                taker_left=buyer.qty, maker=seller, reason=Reason.AUCTION,
            )  # fmt: skip
            for order in (buyer, seller):
                if order.qty == 0:
                    self._remove(order)
        self._ref = price
        self._event(EventType.AUCTION_UNCROSSED, price=price, qty=volume)

    # --------------------------------------------------------------- inspection

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def mode(self) -> Mode:
        return Mode(self._mode)

    @property
    def ref_price(self) -> int:
        return self._ref

    @property
    def band_ticks(self) -> int:
        return self._band

    @property
    def stp_mode(self) -> Stp:
        return Stp(self._stp)

    def best_bid(self) -> int | None:
        return self._best(BUY)

    def best_ask(self) -> int | None:
        return self._best(SELL)

    def depth(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        sides = []
        for side in (BUY, SELL):
            prices = sorted(self._levels[side], reverse=(side == BUY))[:n]
            rows = [(p, sum(o.qty for o in self._levels[side][p]), len(self._levels[side][p])) for p in prices]
            sides.append(np.array(rows, dtype=LEVEL_DTYPE))
        return sides[0], sides[1]

    def orders(self) -> np.ndarray:
        rows = [
            (o.order_id, o.owner, o.side, o.price, o.qty, o.expiry, o.post_only)
            for side in (BUY, SELL)
            for o in self._in_priority_order(side)
        ]
        return np.array(rows, dtype=ORDER_DTYPE)

    def validate(self) -> None:
        listed = []
        for side in (BUY, SELL):
            for price, queue in self._levels[side].items():
                if not queue:
                    raise BookInvariantError(f"empty level kept at {price}")
                for order in queue:
                    if order.side != side or order.price != price or order.qty <= 0:
                        raise BookInvariantError(f"order {order.order_id} misfiled or empty")
                    if 0 < order.expiry <= self._last_ts:
                        raise BookInvariantError(f"order {order.order_id} outlived its expiry")
                    listed.append(order)
        if sorted(o.order_id for o in listed) != sorted(self._by_id) or any(
            self._by_id[o.order_id] is not o for o in listed
        ):
            raise BookInvariantError("id map disagrees with the levels")
        bid, ask = self._best(BUY), self._best(SELL)
        if self._mode == Mode.CONTINUOUS and bid is not None and ask is not None and bid >= ask:
            raise BookInvariantError("continuous book is crossed")

    # ---------------------------------------------------------- snapshot/restore

    def snapshot(self) -> dict[str, np.ndarray]:
        values = (self._mode, self._ref, self._band, self._stp, self._max_span, self._last_ts)
        snap = {name: np.asarray(value, dtype=np.int64) for name, value in zip(SNAPSHOT_SCALARS, values, strict=True)}
        snap["orders"] = self.orders()
        return snap

    @classmethod
    def restore(cls, snapshot: dict[str, np.ndarray]) -> ReferenceBook:
        scalars = {name: int(snapshot[name]) for name in SNAPSHOT_SCALARS}
        last_ts = scalars.pop("last_ts")
        book = cls.from_orders(snapshot["orders"], **scalars)
        book._last_ts = last_ts
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
    ) -> ReferenceBook:
        rows = check_resting_orders(orders, mode=mode, max_span_ticks=max_span_ticks)
        book = cls(
            ref_price=ref_price,
            band_ticks=band_ticks,
            stp_mode=stp_mode,
            capacity=capacity,
            max_span_ticks=max_span_ticks,
            mode=mode,
        )
        for row in rows.tolist():
            book._add(_Order(*row))
        return book
