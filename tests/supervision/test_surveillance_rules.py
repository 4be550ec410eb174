"""The rules' edges, on event streams written out by hand: what must happen, in what order and
how close together, for a finding (the scenarios play the same patterns through the engine)."""

import itertools
import time

import pytest

from supervision.surveillance.context import Context, InstrumentInfo
from supervision.surveillance.feed import Command, Trade
from supervision.surveillance.runner import SurveillanceRunner

pytestmark = pytest.mark.django_db

INST = 7
OWNERS = {1: 101, 2: 102, 3: 103, 4: 104, 5: 105, 6: 101}  # organisation → beneficial owner (1 and 6: one group)


class Stream:
    """Commands and trades with consecutive numbers and chosen times, through a runner's rules."""

    def __init__(self):
        self.runner = SurveillanceRunner()
        self.runner.load()
        ctx = self.runner.ctx
        ctx._owners, ctx._owners_at = dict(OWNERS), time.monotonic() + 3600
        ctx._info[INST] = (time.monotonic() + 3600, InstrumentInfo("T.NX.1", 1, 2000, 1000, 10**10, 1, 1))
        self.seq = itertools.count(1)
        self.ids = itertools.count(1)
        self.t0 = 1_000_000.0

    def run(self, *commands):
        self.runner.ctx.findings = []
        self.runner.process(list(commands))
        return [(f.rule, f.key) for f in self.runner.ctx.findings]

    def new(self, org, side, price, qty, at, *, tif="GTC", status="open", reason=""):
        order_id = next(self.ids)
        return Command(next(self.seq), INST, "new", order_id, None, None, self.t0 + at, org, side, "limit", tif, price,
                       qty, status, reason, self.t0 + at, None)

    def cancel(self, new, at):
        return Command(next(self.seq), INST, "cancel", new.order_id, None, None, self.t0 + at, new.organisation_id)

    def uncross(self, at, *fills):
        """A call auction's uncross at ``at``; ``fills``: (buy order, sell order, price, qty)."""
        command = Command(next(self.seq), INST, "uncross", None, None, None, self.t0 + at)
        command.trades = [Trade(next(self.ids), INST, command.seq, price, qty, buy.order_id, sell.order_id,
                                buy.organisation_id, sell.organisation_id, "auction", self.t0 + at)
                          for buy, sell, price, qty in fills]
        return command

    def cross(self, taker, maker, qty, at):
        """``taker`` (a new order) trades ``qty`` against the resting ``maker``."""
        buy, sell = (taker, maker) if taker.side == "buy" else (maker, taker)
        taker.trades.append(Trade(next(self.ids), INST, taker.seq, maker.price_fen, qty, buy.order_id, sell.order_id,
                                  buy.organisation_id, sell.organisation_id, taker.side, self.t0 + at))
        return taker


@pytest.fixture
def s():
    return Stream()


def test_spoofing_needs_quick_pulls_behind_the_touch_and_a_trade_on_the_other_side(s):
    touch = s.new(2, "buy", 2000, 5, 0)
    assert s.run(touch) == []
    spoofs = [s.new(1, "buy", 1960, 80, 10 * i + 1) for i in range(3)]
    pulls = [s.cancel(order, 10 * i + 2) for i, order in enumerate(spoofs)]
    assert s.run(*[c for pair in zip(spoofs, pulls) for c in pair]) == []  # no trade on the other side yet
    sell = s.cross(s.new(1, "sell", 2000, 2, 25, tif="IOC", status="filled"), touch, 2, 25)
    assert s.run(sell) == [("spoofing", f"101:{INST}:buy")]
    finding = s.runner.ctx.findings[0]
    assert set(finding.orders) == {o.order_id for o in spoofs} and finding.trades == [sell.trades[0].id]
    # Held for 11 seconds, at the touch, or small: none of these counts.
    slow = s.new(3, "buy", 1960, 80, 100)
    at_touch = s.new(3, "buy", 2000, 80, 101)
    small = s.new(3, "buy", 1960, 10, 102)
    s.run(slow, at_touch, small, s.cancel(slow, 111), s.cancel(at_touch, 103), s.cancel(small, 103))
    sell3 = s.cross(s.new(3, "sell", 2000, 1, 104, tif="IOC", status="filled"), touch, 1, 104)
    assert s.run(sell3) == []


def test_spoofing_counts_only_trades_made_while_a_pulled_order_stood(s):
    touch = s.new(2, "buy", 2000, 50, 0)
    spoofs = [s.new(1, "buy", 1960, 80, 100 * i) for i in range(3)]
    pulls = [s.cancel(order, 100 * i + 1) for i, order in enumerate(spoofs)]
    # Between the second and the third (each stood for a second): more than ten seconds from either.
    between = s.cross(s.new(1, "sell", 2000, 2, 150, tif="IOC", status="filled"), touch, 2, 150)
    assert s.run(touch, spoofs[0], pulls[0], spoofs[1], pulls[1], between, spoofs[2], pulls[2]) == []
    during = s.new(1, "sell", 2000, 2, 200.5, tif="IOC", status="filled")
    s.cross(during, touch, 2, 200.5)  # while the third stood
    assert s.run(during) == [("spoofing", f"101:{INST}:buy")]
    assert s.runner.ctx.findings[0].trades == [during.trades[0].id]
    assert s.runner.ctx.findings[0].figures["opposite_trades"] == 1


def test_withdrawals_count_only_while_the_price_stands_above_where_it_was(s):
    asks = [s.new(1, "sell", 2100, 50, i) for i in range(4)]
    bid = s.new(2, "buy", 1990, 100, 0)
    first = s.cross(s.new(3, "sell", 2000, 1, 5, tif="IOC", status="filled"), bid, 1, 5)  # 19.90
    assert s.run(*asks, bid, first, s.cancel(asks[0], 10), s.cancel(asks[1], 11)) == []  # flat: not withholding
    lifted = s.new(4, "sell", 2060, 5, 20)
    rise = s.cross(s.new(2, "buy", 2060, 5, 21, status="filled"), lifted, 5, 21)  # 20.60: +3.5 %
    assert s.run(lifted, rise, s.cancel(asks[2], 30)) == []  # 50 SCU·h withdrawn while up: not yet 100
    assert s.run(s.cancel(asks[3], 31)) == [("withholding", f"101:{INST}")]
    assert set(s.runner.ctx.findings[0].orders) == {asks[2].order_id, asks[3].order_id}


def test_a_maker_that_requotes_while_the_price_rises_withdraws_nothing(s):
    asks = [s.new(1, "sell", 2100, 50, i) for i in range(4)]
    bid = s.new(2, "buy", 1990, 100, 0)
    first = s.cross(s.new(3, "sell", 2000, 1, 5, tif="IOC", status="filled"), bid, 1, 5)
    lifted = s.new(4, "sell", 2060, 5, 20)
    rise = s.cross(s.new(2, "buy", 2060, 5, 21, status="filled"), lifted, 5, 21)  # +3 %: the price stands up
    assert s.run(*asks, bid, first, lifted, rise) == []
    # Cancel and enter again (one way round, then the other), a little higher each time.
    requoted = []
    for i, ask in enumerate(asks[:2]):
        requoted += [s.cancel(ask, 30 + i), s.new(1, "sell", 2120, 50, 30 + i)]
    for i, ask in enumerate(asks[2:]):
        requoted += [s.new(1, "sell", 2120, 50, 40 + i), s.cancel(ask, 41 + i)]
    assert s.run(*requoted) == []
    # Replacing the replacements: still the same 200 SCU·h on offer.
    replacements = [c for c in requoted if c.action == "new"]
    third = [s.new(1, "sell", 2130, 50, 60) for _ in replacements]
    assert s.run(*[x for old, new in zip(replacements, third) for x in (s.cancel(old, 60), new)]) == []
    # Then it really withdraws: 100 of the 200 go, and nothing comes back.
    assert s.run(s.cancel(third[0], 70)) == []
    assert s.run(s.cancel(third[1], 71)) == [("withholding", f"101:{INST}")]
    figures = s.runner.ctx.findings[0].figures
    assert (figures["withdrawn_scu_h"], figures["pulled_scu_h"], figures["offered_again_scu_h"]) == (100, 500, 400)


def test_a_ring_needs_its_legs_in_similar_quantities_within_the_window(s):
    def sale(seller, buyer, qty, at):
        ask = s.new(seller, "sell", 2000, qty, at)
        return [ask, s.cross(s.new(buyer, "buy", 2000, qty, at, status="filled"), ask, qty, at)]

    assert s.run(*sale(1, 2, 10, 0), *sale(2, 3, 10, 1), *sale(3, 1, 30, 2)) == []  # 30 is not like 10
    assert s.run(*sale(3, 1, 11, 3)) == [("wash_circular", f"{INST}:101,102,103")]
    ring = s.runner.ctx.findings[0]
    assert ring.figures["legs"] == 3 and ring.figures["owners"] == [101, 102, 103]
    # A two-leg round trip after the window has passed is not a ring.
    assert s.run(*sale(4, 5, 10, 10), *sale(5, 4, 10, 10 + 601)) == []


def test_withdrawals_by_two_organisations_of_one_owner_count_together(s):
    asks = [s.new(org, "sell", 2100, 50, i) for i, org in enumerate((1, 1, 6, 6))]
    bid = s.new(2, "buy", 1990, 100, 0)
    first = s.cross(s.new(3, "sell", 2000, 1, 5, tif="IOC", status="filled"), bid, 1, 5)  # 19.90
    lifted = s.new(4, "sell", 2060, 5, 20)
    rise = s.cross(s.new(2, "buy", 2060, 5, 21, status="filled"), lifted, 5, 21)  # 20.60: +3.5 %
    assert s.run(*asks, bid, first, lifted, rise, s.cancel(asks[0], 30)) == []  # 50 SCU·h: not yet 100
    assert s.run(s.cancel(asks[2], 31)) == [("withholding", f"101:{INST}")]  # 50 more, by the sister
    finding = s.runner.ctx.findings[0]
    assert finding.organisation_ids == [1, 6] and set(finding.orders) == {asks[0].order_id, asks[2].order_id}


def opening_auction(s, cheap_asks, *, pulled_at):
    """An opening auction whose clean book alone clears 40 SCU·h at 20.00; ``cheap_asks``: the
    organisations that each offered 20 SCU·h at 19.40 at the start and pull it at ``pulled_at``
    (seconds; the uncross is at 1,000, watched from 700). With all 40 in, it would clear at 19.60."""
    bids = [s.new(2, "buy", 2060, 20, 0), s.new(3, "buy", 2000, 20, 0), s.new(4, "buy", 1960, 20, 0)]
    offers = [s.new(5, "sell", 1960, 20, 0), s.new(5, "sell", 2000, 20, 0)]
    cheap = [s.new(org, "sell", 1940, 20, 0) for org in cheap_asks]
    s.run(*bids, *offers, *cheap)
    pulls = s.run(*[s.cancel(order, pulled_at) for order in cheap])
    found = s.run(s.uncross(1000, (bids[0], offers[0], 2000, 20), (bids[1], offers[1], 2000, 20)))
    return cheap, pulls + found


def test_a_late_cancel_is_marking_only_if_the_price_moves_and_the_cancel_is_late():
    s = Stream()
    cheap, found = opening_auction(s, [1, 1], pulled_at=950)
    assert found == [("marking_close", f"101:{INST}:auction")]
    finding = s.runner.ctx.findings[0]
    assert (finding.severity, finding.organisation_ids, set(finding.orders)) == (
        "medium", [1], {order.order_id for order in cheap})
    assert {k: finding.figures[k] for k in ("at", "clearing_price", "price_without", "move_bps", "orders_entered",
                                            "orders_cancelled")} == {
        "at": "auction", "clearing_price": "20.00", "price_without": "19.60", "move_bps": 204, "orders_entered": 0,
        "orders_cancelled": 2}
    # Pulled before the last five minutes, or only half of them (20.00 either way): nothing to flag.
    assert opening_auction(Stream(), [1, 1], pulled_at=650)[1] == []
    assert opening_auction(Stream(), [1], pulled_at=950)[1] == []


def test_cheap_offers_pulled_late_by_two_organisations_of_one_owner_mark_the_uncross_together():
    s = Stream()  # either pull alone leaves the price at 20.00 (above)
    _, found = opening_auction(s, [1, 6], pulled_at=950)
    assert found == [("marking_close", f"101:{INST}:auction")]
    assert s.runner.ctx.findings[0].organisation_ids == [1, 6]
