"""Rules on prices: marking the close (before gate closure and before an auction uncross),
price moves beyond the band, volatility auctions."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from django.db import connection

from exchange.money import cny
from supervision.surveillance.book import InstrumentBook, Resting
from supervision.surveillance.context import Context, Finding, bps, iso
from supervision.surveillance.feed import Command, Trade
from supervision.surveillance.rule_base import Rule

LATE = 5000  # entries and cancels kept per instrument for the auction check
MAX_OWNERS_CHECKED = 20  # per uncross: the owners with the most late volume


@dataclass(slots=True)
class Late:
    at: float
    owner: int
    order: Resting  # as it rested (for a cancel: as it was when pulled)
    cancelled: bool


class MarkingClose(Rule):
    code = "marking_close"

    def __init__(self):
        self.late: dict[int, deque[Late]] = {}

    def _note(self, ctx: Context, command: Command, order: Resting | None, cancelled: bool) -> None:
        if order is None:
            return
        late = self.late.get(command.instrument_id)
        if late is None:
            late = self.late[command.instrument_id] = deque(maxlen=LATE)
        late.append(Late(command.at, ctx.owner(order.organisation_id), order, cancelled))

    def on_new(self, ctx: Context, p: dict, command: Command, order: Resting | None) -> None:
        self._note(ctx, command, order, False)

    def on_cancel(self, ctx: Context, p: dict, command: Command, order: Resting | None) -> None:
        if order is not None:
            self._note(ctx, command, Resting(order.order_id, order.organisation_id, order.side, order.price_fen,
                                             order.qty, order.remaining, order.at, order.expires_at, order.away_bps), True)

    def forget(self, instrument_id: int) -> None:
        self.late.pop(instrument_id, None)

    def on_close(self, ctx: Context, p: dict, command: Command) -> None:
        """Gate closure: did the last minutes' aggressive trading, mostly by one owner, move the price?"""
        inst = command.instrument_id
        self.late.pop(inst, None)
        gate = ctx.instrument(inst).gate_at
        start = gate - p["minutes"] * 60
        window = [t for t in ctx.recent_trades.get(inst, ()) if start <= t.at < gate]
        opening = ctx.price_at(inst, start) if window else None
        if not opening:
            return
        closing = window[-1].price_fen
        move = bps(closing, opening)
        if abs(move) < p["min_move_bps"]:
            return
        direction = "buy" if move > 0 else "sell"
        pushing = [t for t in window if t.aggressor == direction]
        by_owner: dict[int, list[Trade]] = {}
        for t in pushing:
            by_owner.setdefault(ctx.owner(t.buyer_id if direction == "buy" else t.seller_id), []).append(t)
        total = sum(t.qty for t in pushing)
        if not total:
            return
        owner, trades = max(by_owner.items(), key=lambda item: sum(t.qty for t in item[1]))
        share = sum(t.qty for t in trades) * 100 // total
        if share < p["min_share_pct"]:
            return
        ctx.found(Finding(
            self.code, f"{owner}:{inst}:close", "medium", command.at,
            figures={"at": "gate_closure", "price_before": cny(opening), "closing_price": cny(closing), "move_bps": move,
                     "share_pct": share, "minutes": p["minutes"], "gate_closure_at": iso(gate)},
            organisation_ids=sorted({t.buyer_id if direction == "buy" else t.seller_id for t in trades}),
            instrument_id=inst, seq=command.seq,
            orders=[t.buy_order_id if direction == "buy" else t.sell_order_id for t in trades],
            trades=[t.id for t in trades]))

    def on_uncross(self, ctx: Context, p: dict, command: Command, book: InstrumentBook) -> None:
        """Would the auction have cleared elsewhere without one owner's late orders and cancels?"""
        inst = command.instrument_id
        late = self.late.pop(inst, None)
        info = ctx.instrument(inst)
        ref = ctx.reference.get(inst) or info.reference_fen or 0
        since = command.at - p["minutes"] * 60
        by_owner: dict[int, list[Late]] = {}
        for entry in late or ():
            if entry.at >= since:
                by_owner.setdefault(entry.owner, []).append(entry)
        if not by_owner:
            return
        clearing = book.indicative(tick_fen=info.tick_fen, ref_fen=ref)
        if clearing is None:
            return
        ranked = sorted(by_owner.items(), key=lambda item: -sum(e.order.qty for e in item[1]))[:MAX_OWNERS_CHECKED]
        for owner, entries in ranked:
            # Late entries still resting come out; late cancels of orders from before the window go
            # back in (an order entered and pulled within it is in neither book).
            entered = [e.order.order_id for e in entries if not e.cancelled and e.order.order_id in book.orders]
            pulled = [e.order for e in entries if e.cancelled and e.order.order_id not in book.orders
                      and (e.order.at is None or e.order.at < since)]
            if not entered and not pulled:
                continue
            without = book.indicative(tick_fen=info.tick_fen, ref_fen=ref, leave_out=entered, add=pulled)
            if without is None:
                continue
            move = bps(clearing, without)
            if abs(move) < p["auction_min_move_bps"]:
                continue
            mine = set(entered) | {o.order_id for o in pulled}
            ctx.found(Finding(
                self.code, f"{owner}:{inst}:auction", "medium", command.at,
                figures={"at": "auction", "clearing_price": cny(clearing), "price_without": cny(without),
                         "move_bps": move, "orders_entered": len(entered), "orders_cancelled": len(pulled),
                         "minutes": p["minutes"]},
                organisation_ids=sorted({e.order.organisation_id for e in entries}), instrument_id=inst,
                seq=command.seq, orders=sorted(mine),
                trades=[t.id for t in command.trades if t.buy_order_id in mine or t.sell_order_id in mine]))


class PriceMove(Rule):
    code = "price_move"

    def __init__(self):
        self.flagged: dict[int, float] = {}  # instrument → when last reported

    def forget(self, instrument_id: int) -> None:
        self.flagged.pop(instrument_id, None)

    def on_trade(self, ctx: Context, p: dict, trade: Trade) -> None:
        inst = trade.instrument_id
        if trade.at - self.flagged.get(inst, float("-inf")) < max(p["cooldown_s"], p["window_s"]):
            return
        since = trade.at - p["window_s"]
        before = ctx.price_at(inst, since)
        info = ctx.instrument(inst)
        threshold = p["min_move_bps"] or info.band_bps
        if not before or not threshold:
            return
        move = bps(trade.price_fen, before)
        if abs(move) < threshold:
            return
        self.flagged[inst] = trade.at
        ctx.found(Finding(
            self.code, f"{inst}", "info", trade.at,
            figures={"price_before": cny(before), "price": cny(trade.price_fen), "move_bps": move,
                     "threshold_bps": threshold, "band_bps": info.band_bps, "window_s": p["window_s"]},
            organisation_ids=sorted({trade.buyer_id, trade.seller_id}), instrument_id=inst, seq=trade.seq,
            orders=[trade.buy_order_id, trade.sell_order_id], trades=[trade.id]))


class VolatilityAuction(Rule):
    code = "volatility_auction"

    def __init__(self):
        self.called: set[int] = set()  # instruments put in auction by command (halt, resumption)

    def on_auction(self, ctx: Context, p: dict, command: Command) -> None:
        self.called.add(command.instrument_id)

    def forget(self, instrument_id: int) -> None:
        self.called.discard(instrument_id)

    def on_uncross(self, ctx: Context, p: dict, command: Command, book: InstrumentBook) -> None:
        inst = command.instrument_id
        called = inst in self.called
        self.called.discard(inst)
        before = ctx.last_price.get(inst) or self._last_price(inst, command.seq)
        if not command.trades or before is None:
            return  # nothing cleared, or an opening auction (no trade before it)
        clearing = command.trades[0].price_fen
        ctx.found(Finding(
            self.code, f"{inst}:{command.seq}", "info", command.at,
            figures={"kind": "resumption" if called else "volatility", "clearing_price": cny(clearing),
                     "price_before": cny(before), "move_bps": bps(clearing, before),
                     "volume_scu_h": sum(t.qty for t in command.trades), "band_bps": ctx.instrument(inst).band_bps},
            organisation_ids=sorted({o for t in command.trades for o in (t.buyer_id, t.seller_id)})[:50],
            instrument_id=inst, seq=command.seq, trades=[t.id for t in command.trades]))

    @staticmethod
    def _last_price(inst: int, seq: int) -> int | None:
        """The last price before inbox command ``seq`` (not seen since the start: read it)."""
        with connection.cursor() as c:
            c.execute("SELECT price_fen FROM exchange_trade WHERE instrument_id = %s AND inbox_seq < %s "
                      "ORDER BY id DESC LIMIT 1", [inst, seq])
            row = c.fetchone()
        return row[0] if row else None
