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
OWNERS = {1: 101, 2: 102, 3: 103, 4: 104, 5: 105}  # organisation → beneficial owner


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
