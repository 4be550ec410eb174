"""Compact notation for matching scenarios, shared by the matching tests."""

from __future__ import annotations

import numpy as np

from matching import ORDER_DTYPE, Action, EventType, Reason, make_commands

SIDE = {"B": 0, "S": 1}
SIDE_NAME = {0: "B", 1: "S"}


def orders_array(rows: list[tuple]) -> np.ndarray:
    """(order_id, owner, 'B'/'S', price, qty[, expiry[, post_only]]) rows, in time order."""
    out = np.zeros(len(rows), dtype=ORDER_DTYPE)
    for i, row in enumerate(rows):
        oid, owner, side, price, qty, *rest = row
        expiry = rest[0] if rest else 0
        post = rest[1] if len(rest) > 1 else 0
        out[i] = (oid, owner, SIDE[side], price, qty, expiry, post)
    return out


def commands(rows: list[dict]) -> np.ndarray:
    """Dicts with ``action`` as an Action name (or a raw int) and ``side`` as 'B'/'S'."""
    fixed = []
    for row in rows:
        row = dict(row)
        if isinstance(row["action"], str):
            row["action"] = Action[row["action"]]
        if "side" in row and isinstance(row["side"], str):
            row["side"] = SIDE[row["side"]]
        fixed.append(row)
    return make_commands(fixed)


def resting(book) -> list[tuple]:
    """The book's resting orders in priority order as (order_id, 'B'/'S', price, qty)."""
    return [(int(o["order_id"]), SIDE_NAME[int(o["side"])], int(o["price"]), int(o["qty"])) for o in book.orders()]


def summarize(events: np.ndarray) -> list[tuple]:
    """Events as short tuples that scenario tables can spell out."""
    out = []
    for e in events:
        typ = EventType(int(e["type"]))
        reason = Reason(int(e["reason"])).name
        oid, price, qty = int(e["order_id"]), int(e["price"]), int(e["qty"])
        if typ == EventType.TRADE:
            out.append(("TRADE", int(e["taker_id"]), int(e["maker_id"]), price, qty))
        elif typ == EventType.ACCEPTED:
            out.append(("ACCEPTED", oid))
        elif typ in (EventType.REJECTED, EventType.CANCELLED):
            out.append((typ.name, oid, reason))
        elif typ == EventType.EXPIRED:
            out.append(("EXPIRED", oid, qty))
        elif typ == EventType.AMENDED:
            out.append(("AMENDED", oid, price, qty, reason))
        elif typ == EventType.VOLATILITY:
            out.append(("VOLATILITY", oid, price))
        elif typ in (EventType.AUCTION_UNCROSSED, EventType.BAND_SET):
            out.append((typ.name, price, qty))
        else:
            out.append((typ.name,))
    return out
