"""The data structures inside an arena: the id map, the GTD heap, event rows and the
price ladder with its FIFOs. Every function takes the arena ``b`` (see the package
docstring) and changes it in place."""

from __future__ import annotations

import numpy as np

from .layout import (
    BUY,
    C_ID,
    C_PRICE,
    C_QTY,
    C_SIDE,
    E_REJECTED,
    E_TRADE,
    HASH_MUL,
    jit,
    jit_inline,
    L_COUNT,
    L_HEAD,
    L_QTY,
    L_TAIL,
    META_POST,
    NEED_LADDER,
    N_LEVEL_COLS,
    N_ORDER_COLS,
    OK,
    O_EXPIRY,
    O_ID,
    O_META,
    O_NEXT,
    O_OWNER,
    O_PREV,
    O_PRICE,
    O_QTY,
    S_BASE,
    S_BEST_ASK,
    S_BEST_BID,
    S_FREE,
    S_HASH,
    S_HBITS,
    S_HEAP,
    S_HEAP_N,
    S_HPOS,
    S_LVL,
    S_MAX_SPAN,
    S_NEED_HI,
    S_NEED_LO,
    S_N_ASK,
    S_N_BID,
    S_ORD,
    S_SPAN,
    V_CMD,
    V_MAKER,
    V_MAKER_OWNER,
    V_MAKER_REM,
    V_ORDER,
    V_PRICE,
    V_QTY,
    V_REASON,
    V_REM,
    V_SIDE,
    V_TAKER,
    V_TAKER_OWNER,
    V_TAKER_REM,
    V_TYPE,
)


# --------------------------------------------------------------------------- id map


@jit
def home(b, key):
    return np.int64((np.uint64(key) * HASH_MUL) >> np.uint64(64 - b[S_HBITS]))


@jit
def hash_find(b, key):
    """Slot of live order ``key``, or -1."""
    hb = b[S_HASH]
    mask = (1 << b[S_HBITS]) - 1
    i = home(b, key)
    while True:
        k = b[hb + 2 * i]
        if k == key:
            return b[hb + 2 * i + 1]
        if k == 0:
            return -1
        i = (i + 1) & mask


@jit
def hash_insert(b, key, slot):
    hb = b[S_HASH]
    mask = (1 << b[S_HBITS]) - 1
    i = home(b, key)
    while b[hb + 2 * i] != 0:
        i = (i + 1) & mask
    b[hb + 2 * i] = key
    b[hb + 2 * i + 1] = slot


@jit
def hash_delete(b, key):
    # Backward-shift deletion keeps probe chains intact without tombstones, so lookups
    # never slow down as orders come and go.
    hb = b[S_HASH]
    mask = (1 << b[S_HBITS]) - 1
    i = home(b, key)
    while b[hb + 2 * i] != key:
        i = (i + 1) & mask
    b[hb + 2 * i] = 0
    j = i
    while True:
        j = (j + 1) & mask
        k = b[hb + 2 * j]
        if k == 0:
            return
        h = home(b, k)
        # Leave k where it is if its home lies cyclically in (i, j].
        if i <= j:
            if i < h <= j:
                continue
        elif h > i or h <= j:
            continue
        b[hb + 2 * i] = k
        b[hb + 2 * i + 1] = b[hb + 2 * j + 1]
        b[hb + 2 * j] = 0
        i = j


# ------------------------------------------------------------------------- GTD heap


@jit
def heap_less(b, x, y):
    ob = b[S_ORD]
    ex = b[ob + x * N_ORDER_COLS + O_EXPIRY]
    ey = b[ob + y * N_ORDER_COLS + O_EXPIRY]
    if ex != ey:
        return ex < ey
    return b[ob + x * N_ORDER_COLS + O_ID] < b[ob + y * N_ORDER_COLS + O_ID]


@jit
def _heap_up(b, pos):
    hp = b[S_HEAP]
    pp = b[S_HPOS]
    slot = b[hp + pos]
    while pos > 0:
        parent = (pos - 1) >> 1
        p = b[hp + parent]
        if not heap_less(b, slot, p):
            break
        b[hp + pos] = p
        b[pp + p] = pos
        pos = parent
    b[hp + pos] = slot
    b[pp + slot] = pos


@jit
def _heap_down(b, pos):
    hp = b[S_HEAP]
    pp = b[S_HPOS]
    n = b[S_HEAP_N]
    slot = b[hp + pos]
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and heap_less(b, b[hp + child + 1], b[hp + child]):
            child += 1
        c = b[hp + child]
        if not heap_less(b, c, slot):
            break
        b[hp + pos] = c
        b[pp + c] = pos
        pos = child
    b[hp + pos] = slot
    b[pp + slot] = pos


@jit
def _heap_push(b, slot):
    n = b[S_HEAP_N]
    b[b[S_HEAP] + n] = slot
    b[b[S_HPOS] + slot] = n
    b[S_HEAP_N] = n + 1
    _heap_up(b, n)


@jit
def heap_remove(b, slot):
    hp = b[S_HEAP]
    pp = b[S_HPOS]
    pos = b[pp + slot]
    b[pp + slot] = -1
    n = b[S_HEAP_N] - 1
    b[S_HEAP_N] = n
    if pos == n:
        return
    last = b[hp + n]
    b[hp + pos] = last
    b[pp + last] = pos
    _heap_up(b, pos)
    _heap_down(b, b[pp + last])


# --------------------------------------------------------------------------- events


@jit
def emit(ev, ne, typ, ci, oid, side, price, qty, rem, reason):
    ev[ne, V_TYPE] = typ
    ev[ne, V_CMD] = ci
    ev[ne, V_ORDER] = oid
    ev[ne, V_SIDE] = side
    ev[ne, V_PRICE] = price
    ev[ne, V_QTY] = qty
    ev[ne, V_REM] = rem
    ev[ne, V_REASON] = reason
    ev[ne, V_MAKER] = 0
    ev[ne, V_TAKER] = 0
    ev[ne, V_MAKER_OWNER] = 0
    ev[ne, V_TAKER_OWNER] = 0
    ev[ne, V_MAKER_REM] = 0
    ev[ne, V_TAKER_REM] = 0
    return ne + 1


@jit
def emit_trade(ev, ne, ci, tid, side, price, qty, trem, reason, mid, mown, town, mrem):
    ev[ne, V_TYPE] = E_TRADE
    ev[ne, V_CMD] = ci
    ev[ne, V_ORDER] = tid
    ev[ne, V_SIDE] = side
    ev[ne, V_PRICE] = price
    ev[ne, V_QTY] = qty
    ev[ne, V_REM] = trem
    ev[ne, V_REASON] = reason
    ev[ne, V_MAKER] = mid
    ev[ne, V_TAKER] = tid
    ev[ne, V_MAKER_OWNER] = mown
    ev[ne, V_TAKER_OWNER] = town
    ev[ne, V_MAKER_REM] = mrem
    ev[ne, V_TAKER_REM] = trem
    return ne + 1


@jit
def emit_order(ev, ne, typ, ci, b, slot, qty, rem, reason):
    """Event about resting order ``slot`` (CANCELLED, EXPIRED, AMENDED)."""
    o = b[S_ORD] + slot * N_ORDER_COLS
    return emit(ev, ne, typ, ci, b[o + O_ID], b[o + O_META] & 1, b[o + O_PRICE], qty, rem, reason)


@jit
def reject(ev, ne, cmds, i, reason):
    """A refused command: echo its own fields."""
    return emit(
        ev, ne, E_REJECTED, i, cmds[i, C_ID], cmds[i, C_SIDE], cmds[i, C_PRICE], cmds[i, C_QTY], 0, reason
    )


# --------------------------------------------------------------------------- ladder


@jit
def link_tail(b, slot, side, lvl):
    """Append ``slot`` to the FIFO at row ``lvl`` and move the best cursor if needed."""
    ob = b[S_ORD]
    o = ob + slot * N_ORDER_COLS
    row = b[S_LVL] + lvl * N_LEVEL_COLS + 4 * side
    tail = b[row + L_TAIL]
    b[o + O_PREV] = tail
    b[o + O_NEXT] = -1
    if tail < 0:
        b[row + L_HEAD] = slot
    else:
        b[ob + tail * N_ORDER_COLS + O_NEXT] = slot
    b[row + L_TAIL] = slot
    b[row + L_QTY] += b[o + O_QTY]
    b[row + L_COUNT] += 1
    if side == BUY:
        b[S_N_BID] += 1
        if lvl > b[S_BEST_BID]:  # -1 when empty, so any row wins
            b[S_BEST_BID] = lvl
    else:
        b[S_N_ASK] += 1
        best = b[S_BEST_ASK]
        if best < 0 or lvl < best:
            b[S_BEST_ASK] = lvl


@jit
def unlink(b, slot):
    """Take ``slot`` out of its FIFO; when its level empties, re-find the best level.

    The search walks empty rows away from the spread, so its cost is the gap to the next
    live level; a side with no orders left is detected from its count without walking.
    """
    ob = b[S_ORD]
    lb = b[S_LVL]
    o = ob + slot * N_ORDER_COLS
    side = b[o + O_META] & 1
    lvl = b[o + O_PRICE] - b[S_BASE]
    row = lb + lvl * N_LEVEL_COLS + 4 * side
    prev = b[o + O_PREV]
    nxt = b[o + O_NEXT]
    if prev < 0:
        b[row + L_HEAD] = nxt
    else:
        b[ob + prev * N_ORDER_COLS + O_NEXT] = nxt
    if nxt < 0:
        b[row + L_TAIL] = prev
    else:
        b[ob + nxt * N_ORDER_COLS + O_PREV] = prev
    b[row + L_QTY] -= b[o + O_QTY]
    count = b[row + L_COUNT] - 1
    b[row + L_COUNT] = count
    if side == BUY:
        n = b[S_N_BID] - 1
        b[S_N_BID] = n
        if count == 0 and lvl == b[S_BEST_BID]:
            if n == 0:
                b[S_BEST_BID] = -1
            else:
                j = lvl - 1
                while b[lb + j * N_LEVEL_COLS + L_COUNT] == 0:
                    j -= 1
                b[S_BEST_BID] = j
    else:
        n = b[S_N_ASK] - 1
        b[S_N_ASK] = n
        if count == 0 and lvl == b[S_BEST_ASK]:
            if n == 0:
                b[S_BEST_ASK] = -1
            else:
                j = lvl + 1
                while b[lb + j * N_LEVEL_COLS + 4 + L_COUNT] == 0:
                    j += 1
                b[S_BEST_ASK] = j


@jit
def _release(b, slot):
    """Forget a slot that is no longer in any FIFO: id map, GTD heap, free chain."""
    o = b[S_ORD] + slot * N_ORDER_COLS
    hash_delete(b, b[o + O_ID])
    if b[o + O_EXPIRY] > 0:
        heap_remove(b, slot)
    b[o + O_ID] = 0
    b[o + O_QTY] = 0
    b[o + O_NEXT] = b[S_FREE]
    b[S_FREE] = slot


@jit
def remove(b, slot):
    unlink(b, slot)
    _release(b, slot)


@jit_inline
def rest(b, oid, owner, side, price, qty, post, expiry):
    """Put a new order at the back of its level. The caller checked the pool has a slot
    and the ladder covers ``price``."""
    slot = b[S_FREE]
    o = b[S_ORD] + slot * N_ORDER_COLS
    b[S_FREE] = b[o + O_NEXT]
    b[o + O_ID] = oid
    b[o + O_OWNER] = owner
    b[o + O_PRICE] = price
    b[o + O_QTY] = qty
    b[o + O_META] = side | (META_POST if post else 0)
    b[o + O_EXPIRY] = expiry
    link_tail(b, slot, side, price - b[S_BASE])
    hash_insert(b, oid, slot)
    if expiry > 0:
        _heap_push(b, slot)


@jit
def live_extent(b):
    """(lowest, highest) resting price on either side; (0, -1) for an empty book."""
    if b[S_N_BID] + b[S_N_ASK] == 0:
        return 0, -1
    lb = b[S_LVL]
    lo = 0
    while b[lb + lo * N_LEVEL_COLS + L_COUNT] == 0 and b[lb + lo * N_LEVEL_COLS + 4 + L_COUNT] == 0:
        lo += 1
    hi = b[S_SPAN] - 1
    while b[lb + hi * N_LEVEL_COLS + L_COUNT] == 0 and b[lb + hi * N_LEVEL_COLS + 4 + L_COUNT] == 0:
        hi -= 1
    return b[S_BASE] + lo, b[S_BASE] + hi


@jit
def ladder_check(b, price):
    """Can an order rest at ``price``? Returns OK, NEED_LADDER, or -1 (out of range).

    The window never grows wider than max_span ticks, so a price inside it is always
    within range; only a price outside it needs the (rare, O(window)) extent scan.
    """
    lvl = price - b[S_BASE]
    if 0 <= lvl < b[S_SPAN]:
        return OK
    lo, hi = live_extent(b)
    if hi < lo:
        lo = price
        hi = price
    lo = min(lo, price)
    hi = max(hi, price)
    if hi - lo + 1 > b[S_MAX_SPAN]:
        return -1
    b[S_NEED_LO] = lo
    b[S_NEED_HI] = hi
    return NEED_LADDER
