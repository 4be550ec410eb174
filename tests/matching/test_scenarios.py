"""Scenario tables: book before, commands, book after, events — run on both books.

Book rows are (order_id, owner, side, price, qty[, expiry[, post_only]]) in time order;
"after" rows are (order_id, side, price, qty) in priority order (bids best first, then
asks best first). Events use the short forms of helpers.summarize.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from matching import Mode, Stp, Tif

from .helpers import commands, orders_array, resting, summarize

GTD, IOC, FOK = Tif.GTD, Tif.IOC, Tif.FOK
BIG = 1 << 40


def L(oid, side, price, qty, owner=None, **kw):  # noqa: N802 - reads like a table
    return dict(action="LIMIT", order_id=oid, owner=oid if owner is None else owner, side=side, price=price, qty=qty, **kw)


def M(oid, side, qty, protect, owner=None, **kw):  # noqa: N802
    return dict(action="MARKET", order_id=oid, owner=oid if owner is None else owner, side=side, qty=qty,
                protect_ticks=protect, **kw)  # fmt: skip


@dataclass
class Scenario:
    name: str
    before: list[tuple]
    cmds: list[dict]
    after: list[tuple]
    events: list[tuple]
    params: dict = field(default_factory=dict)
    mode: Mode = Mode.CONTINUOUS


SCENARIOS = [
    # --- limit orders and priority
    Scenario("limit rests on an empty book", [], [L(1, "B", 100, 5)], [(1, "B", 100, 5)], [("ACCEPTED", 1)]),
    Scenario(
        "taker walks levels at maker prices, best price then oldest",
        [(1, 1, "S", 101, 5), (2, 2, "S", 100, 3), (3, 3, "S", 100, 4)],
        [L(10, "B", 101, 10)],
        [(1, "S", 101, 2)],
        [("ACCEPTED", 10), ("TRADE", 10, 2, 100, 3), ("TRADE", 10, 3, 100, 4), ("TRADE", 10, 1, 101, 3)],
    ),
    Scenario(
        "sell taker walks bids downwards",
        [(1, 1, "B", 99, 5), (2, 2, "B", 100, 3)],
        [L(10, "S", 99, 4)],
        [(1, "B", 99, 4)],
        [("ACCEPTED", 10), ("TRADE", 10, 2, 100, 3), ("TRADE", 10, 1, 99, 1)],
    ),
    Scenario(
        "taker remainder rests at its limit",
        [(1, 1, "S", 100, 5)],
        [L(10, "B", 101, 8)],
        [(10, "B", 101, 3)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 100, 5)],
    ),
    Scenario(
        "same price queues behind earlier orders",
        [(1, 1, "B", 100, 5)],
        [L(10, "B", 100, 2)],
        [(1, "B", 100, 5), (10, "B", 100, 2)],
        [("ACCEPTED", 10)],
    ),
    # --- IOC / FOK
    Scenario(
        "IOC remainder is cancelled",
        [(1, 1, "S", 100, 5)],
        [L(10, "B", 100, 8, tif=IOC)],
        [],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 100, 5), ("CANCELLED", 10, "IOC_REMAINDER")],
    ),
    Scenario(
        "IOC that does not cross is cancelled whole",
        [(1, 1, "S", 101, 5)],
        [L(10, "B", 100, 8, tif=IOC)],
        [(1, "S", 101, 5)],
        [("ACCEPTED", 10), ("CANCELLED", 10, "IOC_REMAINDER")],
    ),
    Scenario(
        "FOK fills completely across levels",
        [(1, 1, "S", 100, 5), (2, 2, "S", 101, 5)],
        [L(10, "B", 101, 8, tif=FOK)],
        [(2, "S", 101, 2)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 100, 5), ("TRADE", 10, 2, 101, 3)],
    ),
    Scenario(
        "FOK not fillable within its limit is rejected untouched",
        [(1, 1, "S", 100, 5), (2, 2, "S", 101, 5)],
        [L(10, "B", 100, 8, tif=FOK)],
        [(1, "S", 100, 5), (2, "S", 101, 5)],
        [("REJECTED", 10, "FOK_NOT_FILLABLE")],
    ),
    Scenario(
        "FOK blocked by its own owner's order (expire-taker)",
        [(1, 1, "S", 100, 5), (2, 9, "S", 100, 5)],
        [L(10, "B", 100, 8, owner=9, tif=FOK)],
        [(1, "S", 100, 5), (2, "S", 100, 5)],
        [("REJECTED", 10, "FOK_NOT_FILLABLE")],
    ),
    Scenario(
        "FOK skips its own owner's order under expire-maker",
        [(1, 9, "S", 100, 5), (2, 2, "S", 100, 5), (3, 3, "S", 101, 5)],
        [L(10, "B", 101, 8, owner=9, tif=FOK)],
        [(3, "S", 101, 2)],
        [("ACCEPTED", 10), ("CANCELLED", 1, "STP"), ("TRADE", 10, 2, 100, 5), ("TRADE", 10, 3, 101, 3)],
        params=dict(stp_mode=Stp.EXPIRE_MAKER),
    ),
    Scenario(
        "FOK that needs liquidity outside the band is rejected",
        [(1, 1, "S", 100, 5), (2, 2, "S", 103, 5)],
        [L(10, "B", 103, 8, tif=FOK)],
        [(1, "S", 100, 5), (2, "S", 103, 5)],
        [("REJECTED", 10, "FOK_NOT_FILLABLE")],
        params=dict(ref_price=100, band_ticks=2),
    ),
    # --- post-only
    Scenario(
        "post-only that would take is rejected",
        [(1, 1, "S", 100, 5)],
        [L(10, "B", 100, 2, post_only=1)],
        [(1, "S", 100, 5)],
        [("REJECTED", 10, "POST_ONLY_WOULD_TAKE")],
    ),
    Scenario(
        "post-only that does not cross rests",
        [(1, 1, "S", 100, 5)],
        [L(10, "B", 99, 2, post_only=1)],
        [(10, "B", 99, 2), (1, "S", 100, 5)],
        [("ACCEPTED", 10)],
    ),
    # --- market orders
    Scenario(
        "market buy stops at its protection limit",
        [(1, 1, "S", 100, 2), (2, 2, "S", 101, 2), (3, 3, "S", 103, 2)],
        [M(10, "B", 10, 1)],
        [(3, "S", 103, 2)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 100, 2), ("TRADE", 10, 2, 101, 2), ("CANCELLED", 10, "NO_LIQUIDITY")],
    ),
    Scenario(
        "market sell protection counts down from the best bid",
        [(1, 1, "B", 100, 2), (2, 2, "B", 98, 2)],
        [M(10, "S", 3, 1)],
        [(2, "B", 98, 2)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 100, 2), ("CANCELLED", 10, "NO_LIQUIDITY")],
    ),
    Scenario(
        "market order into an empty side is rejected",
        [(1, 1, "B", 100, 2)],
        [M(10, "B", 3, 5)],
        [(1, "B", 100, 2)],
        [("REJECTED", 10, "NO_LIQUIDITY")],
    ),
    Scenario(
        "market FOK is all or nothing",
        [(1, 1, "S", 100, 2), (2, 2, "S", 105, 2)],
        [M(10, "B", 3, 1, tif=FOK), M(11, "B", 2, 1, tif=FOK)],
        [(2, "S", 105, 2)],
        [("REJECTED", 10, "FOK_NOT_FILLABLE"), ("ACCEPTED", 11), ("TRADE", 11, 1, 100, 2)],
    ),
    # --- self-trade prevention
    Scenario(
        "STP expire-taker: trades ahead of its own order, then the rest is cancelled",
        [(1, 1, "S", 100, 2), (2, 9, "S", 100, 2), (3, 3, "S", 100, 2)],
        [L(10, "B", 100, 5, owner=9)],
        [(2, "S", 100, 2), (3, "S", 100, 2)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 100, 2), ("CANCELLED", 10, "STP")],
    ),
    Scenario(
        "STP expire-maker: own order cancelled, matching goes on",
        [(1, 1, "S", 100, 2), (2, 9, "S", 100, 2), (3, 3, "S", 100, 2)],
        [L(10, "B", 100, 5, owner=9)],
        [(10, "B", 100, 1)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 100, 2), ("CANCELLED", 2, "STP"), ("TRADE", 10, 3, 100, 2)],
        params=dict(stp_mode=Stp.EXPIRE_MAKER),
    ),
    Scenario(
        "STP expire-both",
        [(1, 1, "S", 100, 2), (2, 9, "S", 100, 2), (3, 3, "S", 100, 2)],
        [L(10, "B", 100, 5, owner=9)],
        [(3, "S", 100, 2)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 100, 2), ("CANCELLED", 2, "STP"), ("CANCELLED", 10, "STP")],
        params=dict(stp_mode=Stp.EXPIRE_BOTH),
    ),
    # --- cancel and amend
    Scenario(
        "cancel",
        [(1, 1, "B", 100, 5), (2, 2, "B", 100, 1)],
        [dict(action="CANCEL", order_id=1)],
        [(2, "B", 100, 1)],
        [("CANCELLED", 1, "USER")],
    ),
    Scenario(
        "cancel of an unknown order",
        [(1, 1, "B", 100, 5)],
        [dict(action="CANCEL", order_id=7)],
        [(1, "B", 100, 5)],
        [("REJECTED", 7, "UNKNOWN_ORDER")],
    ),
    Scenario(
        "amend quantity down keeps time priority",
        [(1, 1, "B", 100, 5), (2, 2, "B", 100, 5)],
        [dict(action="AMEND", order_id=1, qty=3), L(10, "S", 100, 4)],
        [(2, "B", 100, 4)],
        [("AMENDED", 1, 100, 3, "NONE"), ("ACCEPTED", 10), ("TRADE", 10, 1, 100, 3), ("TRADE", 10, 2, 100, 1)],
    ),
    Scenario(
        "amend quantity up loses time priority",
        [(1, 1, "B", 100, 5), (2, 2, "B", 100, 5)],
        [dict(action="AMEND", order_id=1, qty=6), L(10, "S", 100, 4)],
        [(2, "B", 100, 1), (1, "B", 100, 6)],
        [("AMENDED", 1, 100, 6, "LOST_PRIORITY"), ("ACCEPTED", 10), ("TRADE", 10, 2, 100, 4)],
    ),
    Scenario(
        "amend to a crossing price trades as a taker",
        [(1, 1, "B", 99, 5), (2, 2, "S", 100, 3)],
        [dict(action="AMEND", order_id=1, price=100)],
        [(1, "B", 100, 2)],
        [("AMENDED", 1, 100, 5, "LOST_PRIORITY"), ("TRADE", 1, 2, 100, 3)],
    ),
    Scenario(
        "amend of price moves to the back of the new level",
        [(1, 1, "B", 99, 5), (2, 2, "B", 100, 5)],
        [dict(action="AMEND", order_id=1, price=100, qty=4)],
        [(2, "B", 100, 5), (1, "B", 100, 4)],
        [("AMENDED", 1, 100, 4, "LOST_PRIORITY")],
    ),
    Scenario(
        "post-only amend that would take is rejected, order unchanged",
        [(1, 1, "B", 99, 5, 0, 1), (2, 2, "S", 100, 3)],
        [dict(action="AMEND", order_id=1, price=100)],
        [(1, "B", 99, 5), (2, "S", 100, 3)],
        [("REJECTED", 1, "POST_ONLY_WOULD_TAKE")],
    ),
    Scenario(
        "amend of an unknown order",
        [],
        [dict(action="AMEND", order_id=3, qty=1)],
        [],
        [("REJECTED", 3, "UNKNOWN_ORDER")],
    ),
    # --- GTD
    Scenario(
        "GTD order expires before it could trade",
        [(1, 1, "S", 100, 5, 10), (2, 2, "S", 101, 5)],
        [L(10, "B", 101, 5, ts=10)],
        [],
        [("EXPIRED", 1, 5), ("ACCEPTED", 10), ("TRADE", 10, 2, 101, 5)],
    ),
    Scenario(
        "GTD that is already due is rejected",
        [],
        [L(10, "B", 100, 5, tif=GTD, expiry=5, ts=5)],
        [],
        [("REJECTED", 10, "INVALID_EXPIRY")],
    ),
    Scenario(
        "EXPIRE sweeps due orders by expiry, then id",
        [(1, 1, "B", 100, 1, 7), (2, 2, "B", 99, 1, 5), (3, 3, "S", 105, 1, 5), (4, 4, "S", 106, 1, 9)],
        [dict(action="EXPIRE", ts=7)],
        [(4, "S", 106, 1)],
        [("EXPIRED", 2, 1), ("EXPIRED", 3, 1), ("EXPIRED", 1, 1)],
    ),
    Scenario(
        "GTD rests until its expiry",
        [],
        [L(10, "B", 100, 1, tif=GTD, expiry=5, ts=1), dict(action="EXPIRE", ts=4), dict(action="EXPIRE", ts=5)],
        [],
        [("ACCEPTED", 10), ("EXPIRED", 10, 1)],
    ),
    # --- validation
    Scenario(
        "invalid commands are rejected with a reason",
        [(1, 1, "B", 100, 5)],
        [
            L(1, "B", 100, 1),
            L(0, "B", 100, 1),
            L(10, 2, 100, 1),
            L(11, "B", 100, 0),
            L(12, "B", 0, 1),
            L(13, "B", 100, 1, tif=9),
            L(14, "B", 100, 1, tif=IOC, post_only=1),
            M(15, "B", 1, 2, post_only=1),
            M(16, "B", 1, -1),
            dict(action="EXPIRE", order_id=17),
            dict(action=99, order_id=18),
        ],
        [(1, "B", 100, 5)],
        [
            ("REJECTED", 1, "DUPLICATE_ORDER_ID"),
            ("REJECTED", 0, "INVALID_ORDER_ID"),
            ("REJECTED", 10, "INVALID_SIDE"),
            ("REJECTED", 11, "INVALID_QTY"),
            ("REJECTED", 12, "INVALID_PRICE"),
            ("REJECTED", 13, "INVALID_TIF"),
            ("REJECTED", 14, "INVALID_TIF"),
            ("REJECTED", 15, "INVALID_TIF"),
            ("REJECTED", 16, "INVALID_PROTECTION"),
            ("REJECTED", 18, "INVALID_ACTION"),
        ],
    ),
    Scenario(
        "prices up to 2**40 and beyond rest without a giant ladder",
        [],
        [L(1, "B", BIG, 1), L(2, "S", BIG + 5, 1)],
        [(1, "B", BIG, 1), (2, "S", BIG + 5, 1)],
        [("ACCEPTED", 1), ("ACCEPTED", 2)],
    ),
    Scenario(
        "a resting price too far from the book is out of range",
        [(1, 1, "B", 100, 5)],
        [L(10, "S", 200, 1), L(11, "S", 199, 1), L(12, "B", 100_000, 2, tif=IOC)],
        [(1, "B", 100, 5)],
        [
            ("REJECTED", 10, "PRICE_OUT_OF_RANGE"),
            ("ACCEPTED", 11),
            ("ACCEPTED", 12),
            ("TRADE", 12, 11, 199, 1),
            ("CANCELLED", 12, "IOC_REMAINDER"),
        ],
        params=dict(max_span_ticks=100),
    ),
    # --- price band
    Scenario(
        "trade outside the band stops matching; remainder rests in the auction",
        [(1, 1, "S", 101, 2), (2, 2, "S", 103, 5)],
        [L(10, "B", 103, 5)],
        [(10, "B", 103, 3), (2, "S", 103, 5)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 101, 2), ("VOLATILITY", 10, 103)],
        params=dict(ref_price=100, band_ticks=2),
        mode=Mode.AUCTION,
    ),
    Scenario(
        "IOC stopped by the band is cancelled",
        [(1, 1, "S", 101, 2), (2, 2, "S", 103, 5)],
        [L(10, "B", 103, 5, tif=IOC)],
        [(2, "S", 103, 5)],
        [("ACCEPTED", 10), ("TRADE", 10, 1, 101, 2), ("VOLATILITY", 10, 103), ("CANCELLED", 10, "BAND")],
        params=dict(ref_price=100, band_ticks=2),
        mode=Mode.AUCTION,
    ),
    Scenario(
        "after VOLATILITY the rest of the batch is collected, not matched",
        [(1, 1, "S", 101, 2), (2, 2, "S", 103, 5)],
        [L(10, "B", 103, 5), L(11, "S", 99, 1), L(12, "B", 103, 1, tif=IOC)],
        [(10, "B", 103, 3), (11, "S", 99, 1), (2, "S", 103, 5)],
        [
            ("ACCEPTED", 10),
            ("TRADE", 10, 1, 101, 2),
            ("VOLATILITY", 10, 103),
            ("ACCEPTED", 11),
            ("REJECTED", 12, "AUCTION_IN_PROGRESS"),
        ],
        params=dict(ref_price=100, band_ticks=2),
        mode=Mode.AUCTION,
    ),
    Scenario(
        "SET_BAND moves the reference and the band",
        [(1, 1, "S", 102, 2)],
        [dict(action="SET_BAND", price=100, qty=1), L(10, "B", 102, 1)],
        [(10, "B", 102, 1), (1, "S", 102, 2)],
        [("BAND_SET", 100, 1), ("ACCEPTED", 10), ("VOLATILITY", 10, 102)],
        mode=Mode.AUCTION,
    ),
    # --- call auction
    Scenario(
        "auction collects crossed orders and refuses IOC, FOK and market",
        [],
        [L(1, "B", 101, 5), L(2, "S", 99, 5), L(3, "B", 101, 1, tif=IOC), L(4, "B", 101, 1, tif=FOK), M(5, "B", 1, 9)],
        [(1, "B", 101, 5), (2, "S", 99, 5)],
        [
            ("ACCEPTED", 1),
            ("ACCEPTED", 2),
            ("REJECTED", 3, "AUCTION_IN_PROGRESS"),
            ("REJECTED", 4, "AUCTION_IN_PROGRESS"),
            ("REJECTED", 5, "AUCTION_IN_PROGRESS"),
        ],
        params=dict(mode=Mode.AUCTION),
        mode=Mode.AUCTION,
    ),
    Scenario(
        "uncross at the price of most volume",
        [(1, 1, "B", 102, 10), (2, 2, "B", 100, 10), (3, 3, "S", 99, 5), (4, 4, "S", 101, 10)],
        [dict(action="UNCROSS")],
        [(2, "B", 100, 10), (4, "S", 101, 5)],
        [("TRADE", 1, 3, 101, 5), ("TRADE", 1, 4, 101, 5), ("AUCTION_UNCROSSED", 101, 10)],
        params=dict(mode=Mode.AUCTION, ref_price=100),
    ),
    Scenario(
        "uncross tie: least surplus wins",
        [(1, 1, "B", 101, 10), (2, 2, "B", 100, 4), (3, 3, "S", 99, 10)],
        [dict(action="UNCROSS")],
        [(2, "B", 100, 4)],
        [("TRADE", 1, 3, 101, 10), ("AUCTION_UNCROSSED", 101, 10)],
        params=dict(mode=Mode.AUCTION, ref_price=100),
    ),
    Scenario(
        "uncross tie: buying pressure takes the highest price",
        [(1, 1, "B", 101, 10), (2, 2, "S", 99, 5)],
        [dict(action="UNCROSS")],
        [(1, "B", 101, 5)],
        [("TRADE", 1, 2, 101, 5), ("AUCTION_UNCROSSED", 101, 5)],
        params=dict(mode=Mode.AUCTION, ref_price=100),
    ),
    Scenario(
        "uncross tie: selling pressure takes the lowest price",
        [(1, 1, "B", 101, 5), (2, 2, "S", 99, 10)],
        [dict(action="UNCROSS")],
        [(2, "S", 99, 5)],
        [("TRADE", 1, 2, 99, 5), ("AUCTION_UNCROSSED", 99, 5)],
        params=dict(mode=Mode.AUCTION, ref_price=100),
    ),
    Scenario(
        "uncross tie: balanced, nearest the reference price",
        [(1, 1, "B", 101, 5), (2, 2, "S", 99, 5)],
        [dict(action="UNCROSS")],
        [],
        [("TRADE", 1, 2, 100, 5), ("AUCTION_UNCROSSED", 100, 5)],
        params=dict(mode=Mode.AUCTION, ref_price=100),
    ),
    Scenario(
        "uncross tie: balanced, reference above the range",
        [(1, 1, "B", 101, 5), (2, 2, "S", 99, 5)],
        [dict(action="UNCROSS")],
        [],
        [("TRADE", 1, 2, 101, 5), ("AUCTION_UNCROSSED", 101, 5)],
        params=dict(mode=Mode.AUCTION, ref_price=150),
    ),
    Scenario(
        "uncross allocates by time priority within a price",
        [(1, 1, "B", 101, 5), (2, 2, "B", 101, 5), (3, 3, "S", 100, 7)],
        [dict(action="UNCROSS")],
        [(2, "B", 101, 3)],
        [("TRADE", 1, 3, 101, 5), ("TRADE", 2, 3, 101, 2), ("AUCTION_UNCROSSED", 101, 7)],
        params=dict(mode=Mode.AUCTION),
    ),
    Scenario(
        "uncross of a book that does not cross only reopens trading",
        [(1, 1, "B", 99, 5), (2, 2, "S", 100, 5)],
        [dict(action="UNCROSS")],
        [(1, "B", 99, 5), (2, "S", 100, 5)],
        [("AUCTION_UNCROSSED", 0, 0)],
        params=dict(mode=Mode.AUCTION),
    ),
    Scenario(
        "mode commands out of turn are rejected",
        [],
        [dict(action="UNCROSS"), dict(action="SET_AUCTION"), dict(action="SET_AUCTION")],
        [],
        [("REJECTED", 0, "WRONG_MODE"), ("AUCTION_STARTED",), ("REJECTED", 0, "WRONG_MODE")],
        mode=Mode.AUCTION,
    ),
]


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(book_cls, sc: Scenario):
    book = book_cls.from_orders(orders_array(sc.before), **sc.params)
    book.validate()
    events = book.process(commands(sc.cmds))
    book.validate()
    assert summarize(events) == sc.events
    assert resting(book) == sc.after
    assert book.mode == sc.mode
