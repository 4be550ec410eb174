"""The Book / ReferenceBook interface the exchange's engine runner relies on."""

from __future__ import annotations

import numpy as np
import pytest

from matching import EVENT_DTYPE, Book, BookInvariantError, EventType, Mode, Reason, ReferenceBook, Side, kernel

from .helpers import commands, orders_array, resting


def test_trade_event_carries_both_sides(book_cls):
    book = book_cls.from_orders(orders_array([(1, 7, "S", 100, 5)]))
    events = book.process(commands([dict(action="CANCEL", order_id=99), dict(action="LIMIT", order_id=2, owner=8,
                                                                            side="B", price=101, qty=3)]))  # fmt: skip
    assert events.dtype == EVENT_DTYPE
    trade = events[events["type"] == EventType.TRADE]
    assert trade.tolist() == [
        # type, cmd_index, order_id, side, price, qty, remaining, reason,
        # maker_id, taker_id, maker_owner, taker_owner, maker_remaining, taker_remaining
        (EventType.TRADE, 1, 2, Side.BUY, 100, 3, 0, Reason.NONE, 1, 2, 7, 8, 2, 0)
    ]
    assert events["cmd_index"].tolist() == [0, 1, 1]


def test_inspection(book_cls):
    book = book_cls.from_orders(
        orders_array([(1, 1, "B", 99, 5), (2, 2, "B", 99, 1), (3, 3, "B", 97, 2), (4, 4, "S", 101, 4)])
    )
    assert (book.best_bid(), book.best_ask(), len(book)) == (99, 101, 4)
    bids, asks = book.depth(5)
    assert bids.tolist() == [(99, 6, 2), (97, 2, 1)]
    assert asks.tolist() == [(101, 4, 1)]
    assert book.depth(1)[0].tolist() == [(99, 6, 2)]
    assert book.indicative() == (0, 0)
    empty = book_cls()
    assert (empty.best_bid(), empty.best_ask(), empty.mode) == (None, None, Mode.CONTINUOUS)


def test_indicative_price_while_collecting(book_cls):
    book = book_cls(ref_price=100, mode=Mode.AUCTION)
    book.process(commands([
        dict(action="LIMIT", order_id=1, owner=1, side="B", price=102, qty=10),
        dict(action="LIMIT", order_id=2, owner=2, side="S", price=99, qty=4),
    ]))  # fmt: skip
    assert book.indicative() == (102, 4)  # buyers press: highest of the tied prices
    book.process(commands([dict(action="LIMIT", order_id=3, owner=3, side="S", price=101, qty=6)]))
    assert book.indicative() == (101, 10)
    events = book.process(commands([dict(action="UNCROSS")]))
    assert events[-1].tolist()[:6] == (EventType.AUCTION_UNCROSSED, 0, 0, Side.BUY, 101, 10)
    assert (book.mode, book.ref_price) == (Mode.CONTINUOUS, 101)


def test_snapshot_round_trip_between_books(book_cls):
    other = ReferenceBook if book_cls is Book else Book
    book = book_cls(ref_price=100, band_ticks=5, mode=Mode.AUCTION)
    book.process(commands([
        dict(action="LIMIT", order_id=1, owner=1, side="B", price=101, qty=3, tif=1, expiry=50, ts=7),
        dict(action="LIMIT", order_id=2, owner=2, side="S", price=100, qty=2, post_only=1, ts=8),
    ]))  # fmt: skip
    snap = book.snapshot()
    assert {k: int(v) for k, v in snap.items() if k != "orders"} == dict(
        mode=Mode.AUCTION, ref_price=100, band_ticks=5, stp_mode=0, max_span_ticks=1 << 20, last_ts=8
    )
    restored = other.restore(snap)
    restored.validate()
    assert restored.orders().tolist() == book.orders().tolist()
    assert restored.snapshot()["orders"].tolist() == snap["orders"].tolist()
    expire = commands([dict(action="EXPIRE", ts=50)])
    assert restored.process(expire).tolist() == book.process(expire).tolist()


def test_from_orders_refuses_impossible_books(book_cls):
    with pytest.raises(ValueError, match="crossed"):
        book_cls.from_orders(orders_array([(1, 1, "B", 101, 1), (2, 2, "S", 100, 1)]))
    with pytest.raises(ValueError, match="unique"):
        book_cls.from_orders(orders_array([(1, 1, "B", 99, 1), (1, 2, "S", 100, 1)]))
    with pytest.raises(ValueError, match="qty"):
        book_cls.from_orders(orders_array([(1, 1, "B", 99, 0)]))
    with pytest.raises(ValueError, match="span"):
        book_cls.from_orders(orders_array([(1, 1, "B", 1, 1), (2, 2, "S", 500, 1)]), max_span_ticks=100)
    crossed = book_cls.from_orders(orders_array([(1, 1, "B", 101, 1), (2, 2, "S", 100, 1)]), mode=Mode.AUCTION)
    assert resting(crossed) == [(1, "B", 101, 1), (2, "S", 100, 1)]


def test_process_wants_the_command_dtype(book_cls):
    with pytest.raises(TypeError):
        book_cls().process(np.zeros(3, dtype=np.int64))


def test_big_batch_grows_pool_ladder_and_event_buffer():
    """A batch far larger than the initial arrays: nothing dropped, same as the reference."""
    rng = np.random.default_rng(7)
    n = 20_000
    rows = []
    for i in range(n):
        side = "B" if i % 2 else "S"
        price = int(rng.integers(1_000, 1_400)) + (0 if side == "S" else -150)
        rows.append(dict(action="LIMIT", order_id=i + 1, owner=i % 50, side=side, price=price, qty=5))
    # One buy sweeps half the asks: thousands of trades from one command.
    rows.append(dict(action="LIMIT", order_id=n + 1, owner=999, side="B", price=1_300, qty=10**9, tif=2))
    batch = commands(rows)
    fast = Book(capacity=4)
    ref = ReferenceBook()
    got = fast.process(batch)
    assert got.tolist() == ref.process(batch).tolist()
    assert (got["type"] == EventType.TRADE).sum() > 5_000
    fast.validate()
    assert fast.orders().tolist() == ref.orders().tolist()


def test_validate_detects_corruption():
    book = Book.from_orders(orders_array([(1, 1, "B", 99, 5), (2, 2, "B", 99, 1)]))
    book.validate()
    row = int(book._b[kernel.S_LVL] + (99 - book._b[kernel.S_BASE]) * kernel.N_LEVEL_COLS + kernel.L_QTY)
    book._b[row] += 1
    with pytest.raises(BookInvariantError, match="level quantity"):
        book.validate()
