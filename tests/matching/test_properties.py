"""Random command streams through both books: identical events and books at every step.

Small id, owner and price ranges make duplicates, unknown ids, self-trades, crossings,
band breaches and auctions common; capacity 1 and a narrow max_span force the compiled
book to grow its pool and re-base its ladder mid-batch.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching import COMMAND_DTYPE, Action, Book, Mode, ReferenceBook, Stp, Tif

PROFILE = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ACTIONS = np.array(
    [Action.LIMIT] * 16
    + [Action.MARKET] * 3
    + [Action.CANCEL] * 4
    + [Action.AMEND] * 4
    + [Action.EXPIRE, Action.SET_AUCTION, Action.UNCROSS, Action.UNCROSS, Action.SET_BAND]
)
TIFS = np.array([Tif.GTC, Tif.GTC, Tif.GTD, Tif.IOC, Tif.FOK])


@st.composite
def book_params(draw) -> dict:
    return dict(
        stp_mode=draw(st.sampled_from(list(Stp))),
        ref_price=100,
        band_ticks=draw(st.sampled_from([0, 0, 3, 6])),
        capacity=draw(st.sampled_from([1, 2, 64])),
        max_span_ticks=draw(st.sampled_from([40, 1 << 20])),
        mode=draw(st.sampled_from([Mode.CONTINUOUS] * 4 + [Mode.AUCTION])),
    )


@st.composite
def command_stream(draw) -> np.ndarray:
    """Hypothesis picks the length and a seed; numpy draws the commands, because the
    mix of valid and invalid values needs set probabilities (hypothesis favours edge
    cases, which here would mean mostly rejected commands)."""
    n = draw(st.integers(1, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def mostly(valid: int, invalid: int) -> int:
        return invalid if rng.random() < 0.05 else valid

    def price() -> int:
        r = rng.random()
        if r < 0.8:
            return int(rng.integers(97, 104))
        if r < 0.9:
            return int(rng.integers(0, 301))
        return int(rng.integers(2_000, 2_101))

    out = np.zeros(n, dtype=COMMAND_DTYPE)
    ts = 0
    for i in range(n):
        ts += int(rng.integers(0, 3))
        action = int(rng.choice(ACTIONS))
        row = dict(action=action, ts=ts, order_id=mostly(int(rng.integers(1, 16)), 0))
        if action in (Action.LIMIT, Action.MARKET):
            tif = int(rng.choice(TIFS))
            row.update(
                owner=int(rng.integers(1, 4)),
                side=mostly(int(rng.integers(0, 2)), 2),
                price=price(),
                qty=mostly(int(rng.integers(1, 9)), 0),
                tif=tif,
                post_only=int(rng.random() < 0.1),
                expiry=ts + mostly(int(rng.integers(1, 7)), 0) if tif == Tif.GTD else 0,
                protect_ticks=mostly(int(rng.integers(0, 5)), -1),
            )
        elif action == Action.AMEND:
            row.update(price=0 if rng.random() < 0.4 else price(), qty=int(rng.integers(0, 9)))
        elif action == Action.SET_BAND:
            row.update(price=int(rng.choice([0, 98, 100, 102])), qty=int(rng.integers(0, 7)))
        for name, value in row.items():
            out[name][i] = value
    return out


def assert_same(fast: Book, ref: ReferenceBook) -> None:
    fast.validate()
    ref.validate()
    assert fast.orders().tolist() == ref.orders().tolist()
    assert fast.mode == ref.mode
    assert (fast.best_bid(), fast.best_ask()) == (ref.best_bid(), ref.best_ask())
    assert fast.indicative() == ref.indicative()
    assert fast.ref_price == ref.ref_price and fast.band_ticks == ref.band_ticks
    assert [a.tolist() for a in fast.depth(3)] == [a.tolist() for a in ref.depth(3)]
    assert len(fast) == len(ref)


@PROFILE
@given(params=book_params(), cmds=command_stream(), split=st.integers(0, 60))
def test_both_books_agree_step_by_step(params, cmds, split):
    fast, ref = Book(**params), ReferenceBook(**params)
    steps = []
    for i in range(len(cmds)):
        one = cmds[i : i + 1]
        got, want = fast.process(one), ref.process(one)
        assert got.tolist() == want.tolist(), f"command {i}: {cmds[i]}"
        assert_same(fast, ref)
        got["cmd_index"] = i
        steps.append(got)
    stepped = np.concatenate(steps)

    # One batch gives the same events (cmd_index now counts within the batch), even
    # though the pool and ladder have to grow part-way through it.
    batch_book = Book(**params)
    assert batch_book.process(cmds).tolist() == stepped.tolist()
    assert batch_book.orders().tolist() == fast.orders().tolist()

    # A snapshot taken part-way, restored into the *other* kind of book, carries on
    # exactly as if nothing had happened.
    split = min(split, len(cmds))
    first = Book(**params)
    head = first.process(cmds[:split])
    second = ReferenceBook.restore(first.snapshot())
    assert_same(first, second)
    tail = second.process(cmds[split:])
    tail["cmd_index"] += split
    assert np.concatenate([head, tail]).tolist() == stepped.tolist()
    third = Book.restore(second.snapshot())
    assert_same(third, second)


@PROFILE
@given(params=book_params(), cmds=command_stream())
def test_resting_orders_rebuild_the_same_book(params, cmds):
    """The exchange rebuilds books from its open orders: same orders, same behaviour."""
    book = Book(**params)
    book.process(cmds)
    scalars = dict(
        ref_price=book.ref_price,
        band_ticks=book.band_ticks,
        stp_mode=book.stp_mode,
        mode=book.mode,
        max_span_ticks=params["max_span_ticks"],
    )
    rebuilt = Book.from_orders(book.orders(), **scalars)
    rebuilt_ref = ReferenceBook.from_orders(book.orders(), **scalars)
    assert_same(rebuilt, rebuilt_ref)
    probe = cmds.copy()
    probe["ts"] = 0  # nothing expires, so later GTD expiries are probed too
    assert rebuilt.process(probe).tolist() == rebuilt_ref.process(probe).tolist()
    assert_same(rebuilt, rebuilt_ref)
