"""Rules on who trades with whom and what they cancel: wash trades (one owner on both sides,
and rings of owners), spoofing and layering, withholding."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from exchange.money import cny
from supervision.surveillance.book import Resting
from supervision.surveillance.context import Context, Finding, OwnTrade, bps, iso
from supervision.surveillance.feed import Command, Trade
from supervision.surveillance.rule_base import Rule

RING_EDGES = 256  # recent sales kept per selling owner and instrument


class WashSameOwner(Rule):
    code = "wash_same_owner"

    def on_trade(self, ctx: Context, p: dict, trade: Trade) -> None:
        if trade.qty < p["min_qty"]:
            return
        owner = ctx.owner(trade.buyer_id)
        if owner != ctx.owner(trade.seller_id):
            return
        ctx.found(Finding(
            self.code, f"{owner}:{trade.instrument_id}", "high", trade.at,
            figures={"beneficial_owner_id": owner, "trades": 1, "volume_scu_h": trade.qty, "last_price": cny(trade.price_fen),
                     "buyer_id": trade.buyer_id, "seller_id": trade.seller_id},
            organisation_ids=sorted({trade.buyer_id, trade.seller_id}), instrument_id=trade.instrument_id,
            seq=trade.seq, orders=[trade.buy_order_id, trade.sell_order_id], trades=[trade.id],
            sums=("trades", "volume_scu_h")))


@dataclass(slots=True)
class Sale:
    at: float
    buyer_owner: int
    trade: Trade


class WashCircular(Rule):
    """Each sale is an edge seller owner → buyer owner; a sale that closes a ring of recent
    edges (back to its own seller, in two or three legs) is a finding."""

    code = "wash_circular"

    def __init__(self):
        self.sales: dict[tuple[int, int], deque[Sale]] = {}  # (instrument, seller owner) → recent sales

    def _recent(self, instrument_id: int, seller: int, since: float, qty: int, tolerance: int):
        for sale in self.sales.get((instrument_id, seller), ()):
            if sale.at >= since and abs(sale.trade.qty - qty) * 100 <= tolerance * qty:
                yield sale

    def on_trade(self, ctx: Context, p: dict, trade: Trade) -> None:
        seller, buyer = ctx.owner(trade.seller_id), ctx.owner(trade.buyer_id)
        if seller == buyer or trade.qty < p["min_qty"]:
            return  # one owner on both sides: wash_same_owner's
        since, tolerance, inst = trade.at - p["window_s"], p["qty_tolerance_pct"], trade.instrument_id
        ring: list[Trade] | None = None
        for first in self._recent(inst, buyer, since, trade.qty, tolerance):  # the buyer sold on …
            if first.buyer_owner == seller:  # … to this seller
                ring = [first.trade, trade]
                break
            if p["max_legs"] >= 3 and first.buyer_owner != buyer:  # … to someone who sold to this seller
                second = next((s for s in self._recent(inst, first.buyer_owner, since, trade.qty, tolerance)
                               if s.buyer_owner == seller), None)
                if second is not None:
                    ring = [first.trade, second.trade, trade]
                    break
        sales = self.sales.get((inst, seller))
        if sales is None:
            sales = self.sales[(inst, seller)] = deque(maxlen=RING_EDGES)
        sales.append(Sale(trade.at, buyer, trade))
        if ring is None:
            return
        self._ring(ctx, p, trade, ring)

    def forget(self, instrument_id: int) -> None:
        for key in [k for k in self.sales if k[0] == instrument_id]:
            del self.sales[key]

    def _ring(self, ctx: Context, p: dict, trade: Trade, ring: list[Trade]) -> None:
        inst = trade.instrument_id
        ring.sort(key=lambda t: (t.at, t.id))
        owners = [ctx.owner(t.seller_id) for t in ring]
        orgs = sorted({o for t in ring for o in (t.buyer_id, t.seller_id)})
        ctx.found(Finding(
            self.code, f"{inst}:" + ",".join(str(o) for o in sorted(set(owners))), "high", trade.at,
            figures={"legs": len(ring), "rings": 1, "owners": owners, "qty": [t.qty for t in ring],
                     "prices": [cny(t.price_fen) for t in ring], "span_s": round(ring[-1].at - ring[0].at, 3),
                     "window_s": p["window_s"]},
            organisation_ids=orgs, instrument_id=inst, seq=trade.seq,
            orders=[o for t in ring for o in (t.sell_order_id, t.buy_order_id)], trades=[t.id for t in ring],
            sums=("rings",)))


@dataclass(slots=True)
class Pulled:
    """A large order cancelled soon after it arrived behind the touch."""

    at: float  # cancelled
    order: Resting


class Spoofing(Rule):
    code = "spoofing"

    def __init__(self):
        self.pulled: dict[tuple[int, int], deque[Pulled]] = {}  # (owner, instrument) → recent
        self.reported: dict[tuple[int, int, str], set] = {}

    def on_cancel(self, ctx: Context, p: dict, command: Command, order: Resting | None) -> None:
        if (order is None or order.at is None or order.away_bps is None or order.qty < p["large_qty"]
                or order.away_bps < p["min_away_bps"] or command.at - order.at > p["max_lifetime_s"]
                or order.remaining * 10 < order.qty * 9):  # mostly unfilled
            return
        key = (ctx.owner(order.organisation_id), command.instrument_id)
        pulled = self.pulled.get(key)
        if pulled is None:
            pulled = self.pulled[key] = deque(maxlen=1000)
        pulled.append(Pulled(command.at, order))
        self._check(ctx, p, key, command.at, command.seq)

    def on_trade(self, ctx: Context, p: dict, trade: Trade) -> None:
        for org in (trade.buyer_id, trade.seller_id):
            key = (ctx.owner(org), trade.instrument_id)
            if key in self.pulled:
                self._check(ctx, p, key, trade.at, trade.seq)

    def forget(self, instrument_id: int) -> None:
        for key in [k for k in self.pulled if k[1] == instrument_id]:
            del self.pulled[key]
        for key in [k for k in self.reported if k[1] == instrument_id]:
            del self.reported[key]

    def _check(self, ctx: Context, p: dict, key: tuple[int, int], now: float, seq: int) -> None:
        pulled = self.pulled[key]
        while pulled and pulled[0].at < now - p["window_s"]:
            pulled.popleft()
        if not pulled:
            del self.pulled[key]
            return
        owner, inst = key
        for side in ("buy", "sell"):
            orders = [x for x in pulled if x.order.side == side]
            if len(orders) < p["min_count"]:
                continue
            # Only trades made while one of the pulled orders stood (give or take the grace):
            # a trade an hour from any of them is no sign the orders were meant to help it.
            grace = p["trade_grace_s"]
            stood = [(x.order.at - grace, x.at + grace) for x in orders]
            opposite: list[OwnTrade] = [t for t in ctx.owner_trades.get(key, ())
                                        if t.side != side and any(low <= t.at <= high for low, high in stood)]
            if not opposite:
                continue
            ids = {x.order.order_id for x in orders} | {t.trade.id for t in opposite}
            reported = self.reported.setdefault((owner, inst, side), set())
            if ids <= reported:
                continue  # nothing new since the last finding
            reported |= ids
            ctx.found(Finding(
                self.code, f"{owner}:{inst}:{side}", "high", now,
                figures={"side": side, "orders": len(orders), "qty_scu_h": sum(x.order.qty for x in orders),
                         "longest_life_s": round(max(x.at - x.order.at for x in orders), 3),
                         "least_behind_touch_bps": min(x.order.away_bps for x in orders),
                         "opposite_trades": len(opposite), "opposite_scu_h": sum(t.trade.qty for t in opposite),
                         "first_at": iso(min(x.order.at for x in orders)), "window_s": p["window_s"]},
                organisation_ids=sorted({x.order.organisation_id for x in orders}
                                        | {t.trade.buyer_id if t.side == "buy" else t.trade.seller_id for t in opposite}),
                instrument_id=inst, seq=seq, orders=[x.order.order_id for x in orders],
                trades=[t.trade.id for t in opposite]))


@dataclass(slots=True)
class Withdrawn:
    at: float
    order_id: int
    organisation_id: int
    qty: int
    rise_bps: int


@dataclass(slots=True)
class Offered:
    at: float
    qty: int
    price_fen: int | None  # the last price when it was entered


class Withholding(Rule):
    """Asks cancelled or cut while the last price stands ``min_rise_bps`` above where it was
    a window ago count as withdrawn; ``min_qty`` of them by one owner within the window, net
    of the asks it entered again meanwhile, is a finding. (Withdrawals before the rise do not
    count: a rise that follows them is the market's, not a reason they were made.)

    Netting: a maker that requotes cancels an ask and enters another for the same capacity
    (in either order), so new asks entered while the price stood up as well count against
    the withdrawals, from ``REQUOTE_S`` before the first withdrawal in the window onwards.
    Asks entered before the rise and pulled during it are withdrawn, not requoted."""

    code = "withholding"
    REQUOTE_S = 10.0  # a new ask this long before a withdrawal may be its replacement
    OFFERED = 1000  # new asks kept per owner and instrument

    def __init__(self):
        self.withdrawn: dict[tuple[int, int], deque[Withdrawn]] = {}  # (owner, instrument) → recent
        self.offered: dict[tuple[int, int], deque[Offered]] = {}  # (owner, instrument) → recent new asks
        self.reported: dict[tuple[int, int], set] = {}

    def on_new(self, ctx: Context, p: dict, command: Command, order: Resting | None) -> None:
        if command.side != "sell" or command.type != "limit" or command.status == "rejected" or not command.qty:
            return
        key = (ctx.owner(command.organisation_id), command.instrument_id)
        offered = self.offered.get(key)
        if offered is None:
            offered = self.offered[key] = deque(maxlen=self.OFFERED)
        offered.append(Offered(command.at, command.qty, ctx.last_price.get(command.instrument_id)))
        while offered and offered[0].at < command.at - p["window_s"] - self.REQUOTE_S:
            offered.popleft()

    def on_cancel(self, ctx: Context, p: dict, command: Command, order: Resting | None) -> None:
        if order is not None and order.side == "sell" and order.remaining > 0:
            self._pull(ctx, p, command, order, order.remaining)

    def on_amend(self, ctx: Context, p: dict, command: Command, order: Resting | None, given_up: int) -> None:
        if order is not None and order.side == "sell" and given_up > 0:
            self._pull(ctx, p, command, order, given_up)

    def forget(self, instrument_id: int) -> None:
        for store in (self.withdrawn, self.offered, self.reported):
            for key in [k for k in store if k[1] == instrument_id]:
                del store[key]

    def _pull(self, ctx: Context, p: dict, command: Command, order: Resting, qty: int) -> None:
        inst, since = command.instrument_id, command.at - p["window_s"]
        start, last = ctx.price_at(inst, since), ctx.last_price.get(inst)
        rise = bps(last, start) if start and last else 0
        if rise < p["min_rise_bps"]:
            return
        key = (ctx.owner(order.organisation_id), inst)
        pulled = self.withdrawn.get(key)
        if pulled is None:
            pulled = self.withdrawn[key] = deque(maxlen=1000)
        pulled.append(Withdrawn(command.at, order.order_id, order.organisation_id, qty, rise))
        while pulled and pulled[0].at < since:
            pulled.popleft()
        gross = sum(x.qty for x in pulled)
        from_at = pulled[0].at - self.REQUOTE_S
        offered = sum(x.qty for x in self.offered.get(key, ())
                      if x.at >= from_at and self._up(ctx, p, inst, x.at, x.price_fen))
        total = gross - offered
        ids = {x.order_id for x in pulled}
        reported = self.reported.setdefault(key, set())
        if total < p["min_qty"] or ids <= reported:
            return
        reported |= ids
        rising = [t.id for t in ctx.recent_trades.get(inst, ()) if t.at >= since][-20:]
        ctx.found(Finding(
            self.code, f"{key[0]}:{inst}", "medium", command.at,
            figures={"withdrawn_scu_h": total, "pulled_scu_h": gross, "offered_again_scu_h": offered,
                     "price_start": cny(start), "price_now": cny(last), "rise_bps": rise,
                     "least_rise_bps": min(x.rise_bps for x in pulled), "window_s": p["window_s"]},
            organisation_ids=sorted({x.organisation_id for x in pulled}), instrument_id=inst, seq=command.seq,
            orders=sorted(ids), trades=rising))

    @staticmethod
    def _up(ctx: Context, p: dict, inst: int, at: float, price: int | None) -> bool:
        """Did the last price stand ``min_rise_bps`` above where it was a window before ``at``?"""
        start = ctx.price_at(inst, at - p["window_s"])
        return bool(start and price and bps(price, start) >= p["min_rise_bps"])
