"""Checks shared by both books when they are rebuilt from a list of resting orders."""

from __future__ import annotations

import numpy as np

from .types import MAX_PRICE, MAX_QTY, ORDER_DTYPE, Mode, Side, Stp

SNAPSHOT_SCALARS = ("mode", "ref_price", "band_ticks", "stp_mode", "max_span_ticks", "last_ts")


class BookInvariantError(AssertionError):
    """``validate()`` found the book's internal state inconsistent (a bug, never input)."""


def check_book_params(*, ref_price: int, band_ticks: int, stp_mode: int, capacity: int, max_span_ticks: int,
                      mode: int) -> None:
    """The constructor arguments both books accept; ValueError otherwise."""
    if ref_price < 0 or band_ticks < 0 or capacity < 1 or max_span_ticks < 1:
        raise ValueError("ref_price and band_ticks must be >= 0, capacity and max_span_ticks >= 1")
    if stp_mode not in tuple(Stp) or mode not in tuple(Mode):
        raise ValueError("unknown stp_mode or mode")


def check_resting_orders(orders: np.ndarray, *, mode: int, max_span_ticks: int) -> np.ndarray:
    """Return ``orders`` as a contiguous ORDER_DTYPE array, or raise ValueError.

    ``orders`` are resting orders in time order (or in the priority order
    ``Book.orders()`` gives, which keeps every level's time order): each goes to the back
    of its level. A continuous book must not be crossed; an auction book may be.
    """
    orders = np.ascontiguousarray(orders)
    if orders.dtype != ORDER_DTYPE:
        raise ValueError(f"orders must have dtype ORDER_DTYPE, got {orders.dtype}")
    if orders.ndim != 1:
        raise ValueError("orders must be one-dimensional")
    if len(orders) == 0:
        return orders
    problems = [
        ("order_id must be > 0", orders["order_id"] <= 0),
        ("side must be 0 (buy) or 1 (sell)", (orders["side"] != Side.BUY) & (orders["side"] != Side.SELL)),
        (f"price must be in [1, {MAX_PRICE}]", (orders["price"] < 1) | (orders["price"] > MAX_PRICE)),
        (f"qty must be in [1, {MAX_QTY}]", (orders["qty"] < 1) | (orders["qty"] > MAX_QTY)),
        ("expiry must be >= 0", orders["expiry"] < 0),
        ("post_only must be 0 or 1", (orders["post_only"] != 0) & (orders["post_only"] != 1)),
    ]
    for message, bad in problems:
        if bad.any():
            raise ValueError(f"order row {int(np.argmax(bad))}: {message}")
    if len(np.unique(orders["order_id"])) != len(orders):
        raise ValueError("order ids must be unique")
    if int(orders["price"].max()) - int(orders["price"].min()) + 1 > max_span_ticks:
        raise ValueError(f"resting prices span more than max_span_ticks={max_span_ticks}")
    bids = orders["price"][orders["side"] == Side.BUY]
    asks = orders["price"][orders["side"] == Side.SELL]
    if mode == Mode.CONTINUOUS and len(bids) and len(asks) and bids.max() >= asks.min():
        raise ValueError("a continuous book cannot be crossed (best bid >= best ask)")
    return orders
