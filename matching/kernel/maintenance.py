"""Building, growing, rebuilding and inspecting an arena: called from Python between
batches, never on the matching path."""

from __future__ import annotations

import numpy as np

from .layout import (
    BUY,
    CONTINUOUS,
    jit,
    L_COUNT,
    L_HEAD,
    L_QTY,
    L_TAIL,
    META_POST,
    N_LEVEL_COLS,
    N_ORDER_COLS,
    N_STATE,
    O_EXPIRY,
    O_ID,
    O_META,
    O_NEXT,
    O_OWNER,
    O_PREV,
    O_PRICE,
    O_QTY,
    SELL,
    S_BAND,
    S_BASE,
    S_BEST_ASK,
    S_BEST_BID,
    S_CAP,
    S_FREE,
    S_HASH,
    S_HBITS,
    S_HEAP,
    S_HEAP_N,
    S_HPOS,
    S_LAST_TS,
    S_LVL,
    S_MAX_SPAN,
    S_MODE,
    S_N_ASK,
    S_N_BID,
    S_ORD,
    S_REF,
    S_SPAN,
    S_STP,
)
from .store import (
    hash_find,
    hash_insert,
    heap_less,
    rest,
)


def hash_bits(capacity: int) -> int:
    # Load factor at most 1/2 keeps linear-probing chains short.
    return max(4, int(2 * capacity - 1).bit_length())


def new_arena(header: np.ndarray, *, capacity: int, span: int, base: int) -> np.ndarray:
    """An empty arena (Python; allocation happens only here) with the scalars of
    ``header`` and sections sized for ``capacity`` orders and ``span`` ladder rows."""
    bits = hash_bits(capacity)
    b = np.zeros(N_STATE + capacity * (N_ORDER_COLS + 2) + span * N_LEVEL_COLS + 2 * (1 << bits), dtype=np.int64)
    b[:N_STATE] = header[:N_STATE]
    b[S_CAP] = capacity
    b[S_SPAN] = span
    b[S_HBITS] = bits
    b[S_BASE] = base
    b[S_ORD] = N_STATE
    b[S_LVL] = b[S_ORD] + capacity * N_ORDER_COLS
    b[S_HASH] = b[S_LVL] + span * N_LEVEL_COLS
    b[S_HEAP] = b[S_HASH] + 2 * (1 << bits)
    b[S_HPOS] = b[S_HEAP] + capacity
    orders = b[b[S_ORD] : b[S_LVL]].reshape(capacity, N_ORDER_COLS)
    orders[:, O_NEXT] = np.arange(1, capacity + 1)
    orders[-1, O_NEXT] = -1
    levels = b[b[S_LVL] : b[S_HASH]].reshape(span, N_LEVEL_COLS)
    for side in (0, 4):
        levels[:, side + L_HEAD] = -1
        levels[:, side + L_TAIL] = -1
    b[b[S_HPOS] : b[S_HPOS] + capacity] = -1
    return b


def new_book(*, capacity: int, span: int, base: int, ref_price: int, band_ticks: int, stp_mode: int,
             max_span_ticks: int, mode: int) -> np.ndarray:  # fmt: skip
    header = np.zeros(N_STATE, dtype=np.int64)
    header[S_MODE] = mode
    header[S_REF] = ref_price
    header[S_BAND] = band_ticks
    header[S_STP] = stp_mode
    header[S_BEST_BID] = -1
    header[S_BEST_ASK] = -1
    header[S_MAX_SPAN] = max_span_ticks
    header[S_FREE] = 0
    return new_arena(header, capacity=capacity, span=span, base=base)


@jit
def relayout(old, new):
    """Move every resting order of ``old`` into the empty arena ``new`` (made by
    new_arena from old's header, with a pool at least as large and a ladder that covers
    every resting price). Slots keep their numbers, so FIFO links stay valid; extra slots
    go onto the free chain; ladder rows shift by the change of base; the id map is
    rebuilt at its new size."""
    cap = old[S_CAP]
    new_cap = new[S_CAP]
    oo = old[S_ORD]
    no = new[S_ORD]
    for w in range(cap * N_ORDER_COLS):
        new[no + w] = old[oo + w]
    if new_cap > cap:
        for s in range(cap, new_cap - 1):
            new[no + s * N_ORDER_COLS + O_NEXT] = s + 1
        new[no + (new_cap - 1) * N_ORDER_COLS + O_NEXT] = old[S_FREE]
        new[S_FREE] = cap
    for s in range(cap):
        new[new[S_HEAP] + s] = old[old[S_HEAP] + s]
        new[new[S_HPOS] + s] = old[old[S_HPOS] + s]
    shift = old[S_BASE] - new[S_BASE]
    ol = old[S_LVL]
    nl = new[S_LVL]
    for lvl in range(old[S_SPAN]):
        row = ol + lvl * N_LEVEL_COLS
        if old[row + L_COUNT] > 0 or old[row + 4 + L_COUNT] > 0:
            for col in range(N_LEVEL_COLS):
                new[nl + (lvl + shift) * N_LEVEL_COLS + col] = old[row + col]
    if old[S_BEST_BID] >= 0:
        new[S_BEST_BID] = old[S_BEST_BID] + shift
    if old[S_BEST_ASK] >= 0:
        new[S_BEST_ASK] = old[S_BEST_ASK] + shift
    oh = old[S_HASH]
    for j in range(1 << old[S_HBITS]):
        if old[oh + 2 * j] != 0:
            hash_insert(new, old[oh + 2 * j], old[oh + 2 * j + 1])


@jit
def load_orders(b, rows):
    """Rest ``rows`` (int64[n, 7] laid out as ORDER_DTYPE) in the given order, without
    matching. The caller has checked them and sized the pool and ladder."""
    for r in range(rows.shape[0]):
        rest(b, rows[r, 0], rows[r, 1], rows[r, 2], rows[r, 3], rows[r, 4], rows[r, 6] != 0, rows[r, 5])


@jit
def resting_orders(b, out):
    """Fill ``out`` (int64[live, 7], ORDER_DTYPE layout) with every resting order: bids
    best price first, then asks best price first, each level in time order."""
    r = 0
    base = b[S_BASE]
    ob = b[S_ORD]
    lb = b[S_LVL]
    for side in (BUY, SELL):
        lvl = b[S_BEST_BID] if side == BUY else b[S_BEST_ASK]
        if lvl < 0:
            continue
        step = -1 if side == BUY else 1
        while 0 <= lvl < b[S_SPAN]:
            m = b[lb + lvl * N_LEVEL_COLS + 4 * side + L_HEAD]
            while m >= 0:
                o = ob + m * N_ORDER_COLS
                out[r, 0] = b[o + O_ID]
                out[r, 1] = b[o + O_OWNER]
                out[r, 2] = side
                out[r, 3] = base + lvl
                out[r, 4] = b[o + O_QTY]
                out[r, 5] = b[o + O_EXPIRY]
                out[r, 6] = 1 if b[o + O_META] & META_POST else 0
                r += 1
                m = b[o + O_NEXT]
            lvl += step
    return r


@jit
def depth(b, side, n, out):
    """Fill ``out`` (int64[n, 3]: price, lots, orders) with the best ``n`` levels of a side."""
    lvl = b[S_BEST_BID] if side == BUY else b[S_BEST_ASK]
    step = -1 if side == BUY else 1
    k = 0
    if lvl < 0:
        return 0
    while k < n and 0 <= lvl < b[S_SPAN]:
        row = b[S_LVL] + lvl * N_LEVEL_COLS + 4 * side
        if b[row + L_COUNT] > 0:
            out[k, 0] = b[S_BASE] + lvl
            out[k, 1] = b[row + L_QTY]
            out[k, 2] = b[row + L_COUNT]
            k += 1
        lvl += step
    return k


# validate() failure codes; matching.book maps them to messages.
(
    BAD_FIFO,
    BAD_LEVEL_TOTAL,
    BAD_ORDER,
    BAD_CURSOR,
    BAD_COUNT,
    BAD_CROSSED,
    BAD_MAP,
    BAD_FREE,
    BAD_HEAP,
    BAD_EXPIRED,
) = range(1, 11)


@jit
def validate(b, seen, n_side, best):
    """Check every invariant; returns (0, 0) or (BAD_* code, ladder row / slot at fault).

    ``seen`` (bool[cap]), ``n_side`` and ``best`` (int64[2]) are scratch space, passed
    in because the kernel is compiled without numba's allocator.
    """
    cap = b[S_CAP]
    base = b[S_BASE]
    ob = b[S_ORD]
    seen[:] = False
    n_side[:] = 0
    best[:] = -1
    for lvl in range(b[S_SPAN]):
        for side in (BUY, SELL):
            row = b[S_LVL] + lvl * N_LEVEL_COLS + 4 * side
            m = b[row + L_HEAD]
            prev = -1
            total = 0
            count = 0
            while m >= 0:
                o = ob + m * N_ORDER_COLS
                if m >= cap or seen[m] or b[o + O_PREV] != prev:
                    return BAD_FIFO, lvl
                seen[m] = True
                if b[o + O_QTY] <= 0 or b[o + O_ID] <= 0 or b[o + O_PRICE] != base + lvl:
                    return BAD_ORDER, m
                if (b[o + O_META] & 1) != side:
                    return BAD_ORDER, m
                if hash_find(b, b[o + O_ID]) != m:
                    return BAD_MAP, m
                pos = b[b[S_HPOS] + m]
                if b[o + O_EXPIRY] > 0:
                    if pos < 0 or pos >= b[S_HEAP_N] or b[b[S_HEAP] + pos] != m:
                        return BAD_HEAP, m
                    if b[o + O_EXPIRY] <= b[S_LAST_TS]:
                        return BAD_EXPIRED, m
                elif pos != -1:
                    return BAD_HEAP, m
                total += b[o + O_QTY]
                count += 1
                prev = m
                m = b[o + O_NEXT]
            if b[row + L_TAIL] != prev:
                return BAD_FIFO, lvl
            if b[row + L_QTY] != total or b[row + L_COUNT] != count:
                return BAD_LEVEL_TOTAL, lvl
            if count > 0:
                n_side[side] += count
                if side == BUY or best[side] < 0:
                    best[side] = lvl
    if b[S_BEST_BID] != best[BUY] or b[S_BEST_ASK] != best[SELL]:
        return BAD_CURSOR, 0
    if b[S_N_BID] != n_side[BUY] or b[S_N_ASK] != n_side[SELL]:
        return BAD_COUNT, 0
    if b[S_MODE] == CONTINUOUS and best[BUY] >= 0 and best[SELL] >= 0 and best[BUY] >= best[SELL]:
        return BAD_CROSSED, 0
    live = n_side[BUY] + n_side[SELL]
    keys = 0
    for j in range(1 << b[S_HBITS]):
        if b[b[S_HASH] + 2 * j] != 0:
            keys += 1
    if keys != live:
        return BAD_MAP, 0
    free = 0
    s = b[S_FREE]
    while s >= 0:
        if seen[s] or free > cap:
            return BAD_FREE, s
        free += 1
        s = b[ob + s * N_ORDER_COLS + O_NEXT]
    if free + live != cap:
        return BAD_FREE, 0
    for pos in range(b[S_HEAP_N]):
        slot = b[b[S_HEAP] + pos]
        if b[b[S_HPOS] + slot] != pos or not seen[slot] or b[ob + slot * N_ORDER_COLS + O_EXPIRY] <= 0:
            return BAD_HEAP, slot
        if pos > 0 and heap_less(b, slot, b[b[S_HEAP] + ((pos - 1) >> 1)]):
            return BAD_HEAP, slot
    return 0, 0
