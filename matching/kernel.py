"""The compiled order book: numba functions over one preallocated int64 array.

A book is a single int64 array, the *arena*: a header of scalars (``S_*`` indexes), then
sections whose offsets and sizes the header records:

order pool   S_CAP rows of 8 (``O_*`` columns), 64 bytes per order; free slots are chained
             through ``O_NEXT``.
ladder       S_SPAN rows of 8, row ``price - b[S_BASE]``; columns
             ``4 * side + (L_HEAD, L_TAIL, L_QTY, L_COUNT)``: the FIFO of that side at that
             tick (a doubly linked list through ``O_NEXT``/``O_PREV``), its total lots and
             its order count. Both sides have a list at every tick because an auction book
             may be crossed.
id map       2**S_HBITS (order id, slot) pairs, open addressing with linear probing;
             id 0 marks an empty pair (ids are > 0).
GTD heap     S_CAP slots: binary min-heap of GTD orders by (expiry, order id).
heap index   S_CAP entries: each slot's position in the heap, -1 if it is not GTD.

One array rather than one per structure because every numba call passes each array as
about eight machine words: with one array the calls inside the hot path stay cheap.

Nothing on the matching path allocates. When a batch needs more room than the arena
has, the kernel stops *before* changing anything for that command and returns a
``NEED_*`` status; the Python wrapper (``matching.book``) builds a larger arena with
``new_arena`` and ``relayout`` and calls again from the same command. After an UNCROSS
it returns ``DROP_IDS`` so that ``drop_filled_ids`` (which does allocate) can clear the
filled orders from the id map in bulk before the next command.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .clock import rdtsc
from .types import (
    COMMAND_FIELDS,
    EVENT_FIELDS,
    MAX_PRICE,
    MAX_QTY,
    Action,
    EventType,
    Mode,
    Reason,
    Side,
    Stp,
    Tif,
)

# numba freezes module globals into the compiled code; plain ints keep them constants.
BUY, SELL = int(Side.BUY), int(Side.SELL)
GTC, GTD, IOC, FOK = int(Tif.GTC), int(Tif.GTD), int(Tif.IOC), int(Tif.FOK)
CONTINUOUS, AUCTION = int(Mode.CONTINUOUS), int(Mode.AUCTION)
EXPIRE_TAKER, EXPIRE_MAKER, EXPIRE_BOTH = (
    int(Stp.EXPIRE_TAKER),
    int(Stp.EXPIRE_MAKER),
    int(Stp.EXPIRE_BOTH),
)
A_LIMIT, A_MARKET, A_CANCEL, A_AMEND = (
    int(Action.LIMIT),
    int(Action.MARKET),
    int(Action.CANCEL),
    int(Action.AMEND),
)
A_EXPIRE, A_SET_AUCTION, A_UNCROSS, A_SET_BAND = (
    int(Action.EXPIRE),
    int(Action.SET_AUCTION),
    int(Action.UNCROSS),
    int(Action.SET_BAND),
)
E_ACCEPTED, E_REJECTED, E_TRADE, E_CANCELLED = (
    int(EventType.ACCEPTED),
    int(EventType.REJECTED),
    int(EventType.TRADE),
    int(EventType.CANCELLED),
)
E_EXPIRED, E_AMENDED, E_VOLATILITY = (
    int(EventType.EXPIRED),
    int(EventType.AMENDED),
    int(EventType.VOLATILITY),
)
E_AUCTION_STARTED, E_AUCTION_UNCROSSED, E_BAND_SET = (
    int(EventType.AUCTION_STARTED),
    int(EventType.AUCTION_UNCROSSED),
    int(EventType.BAND_SET),
)
R = {reason.name: int(reason) for reason in Reason}
R_NONE = R["NONE"]
R_INVALID_ACTION = R["INVALID_ACTION"]
R_INVALID_ORDER_ID = R["INVALID_ORDER_ID"]
R_INVALID_SIDE = R["INVALID_SIDE"]
R_INVALID_PRICE = R["INVALID_PRICE"]
R_INVALID_QTY = R["INVALID_QTY"]
R_INVALID_TIF = R["INVALID_TIF"]
R_INVALID_EXPIRY = R["INVALID_EXPIRY"]
R_INVALID_PROTECTION = R["INVALID_PROTECTION"]
R_DUPLICATE = R["DUPLICATE_ORDER_ID"]
R_UNKNOWN = R["UNKNOWN_ORDER"]
R_POST_ONLY = R["POST_ONLY_WOULD_TAKE"]
R_FOK = R["FOK_NOT_FILLABLE"]
R_NO_LIQUIDITY = R["NO_LIQUIDITY"]
R_IOC = R["IOC_REMAINDER"]
R_STP = R["STP"]
R_BAND = R["BAND"]
R_AUCTION_IN_PROGRESS = R["AUCTION_IN_PROGRESS"]
R_WRONG_MODE = R["WRONG_MODE"]
R_OUT_OF_RANGE = R["PRICE_OUT_OF_RANGE"]
R_USER = R["USER"]
R_LOST_PRIORITY = R["LOST_PRIORITY"]
R_AUCTION = R["AUCTION"]
P_MAX = MAX_PRICE
Q_MAX = MAX_QTY

# Statuses returned by process_batch.
OK, NEED_EVENTS, NEED_ORDERS, NEED_LADDER, DROP_IDS = 0, 1, 2, 3, 4

# Header layout (indexes into the arena).
S_MODE = 0
S_REF = 1  # reference price, ticks (0: none, band inactive)
S_BAND = 2  # band half-width, ticks (0: off)
S_STP = 3
S_BASE = 4  # price of ladder row 0
S_BEST_BID = 5  # ladder row of the best bid, -1 if no bids
S_BEST_ASK = 6  # ladder row of the best ask, -1 if no asks
S_N_BID = 7  # live bid orders
S_N_ASK = 8
S_FREE = 9  # head of the free-slot chain, -1 when the pool is full
S_HBITS = 10  # log2 of the hash table size
S_HEAP_N = 11
S_MAX_SPAN = 12  # widest allowed distance, in ticks, between resting prices (+1)
S_LAST_TS = 13  # ts of the last command: no live GTD order has expiry <= this
S_NEED_LO = 14  # NEED_LADDER: lowest and highest price the ladder must cover
S_NEED_HI = 15
# Layout of the sections that follow the header (offsets are indexes into the arena).
S_ORD = 16  # offset of the order pool, S_CAP rows of N_ORDER_COLS
S_CAP = 17
S_LVL = 18  # offset of the ladder, S_SPAN rows of N_LEVEL_COLS
S_SPAN = 19
S_HASH = 20  # offset of the id map, 2**S_HBITS (key, slot) pairs
S_HEAP = 21  # offset of the GTD heap, S_CAP slots
S_HPOS = 22  # offset of each slot's heap position (-1: not GTD), S_CAP entries
S_DROP_FROM = 23  # DROP_IDS: first event row of the uncross whose filled ids to drop
N_STATE = 24

# order pool columns.
O_ID, O_OWNER, O_PRICE, O_QTY, O_NEXT, O_PREV, O_META, O_EXPIRY = range(8)
N_ORDER_COLS = 8
# O_META bits: side, then post-only.
META_POST = 2

# ladder columns, offset by 4 * side.
L_HEAD, L_TAIL, L_QTY, L_COUNT = range(4)
N_LEVEL_COLS = 8

# command and event columns, in dtype order.
(C_ACTION, C_ID, C_OWNER, C_SIDE, C_PRICE, C_QTY, C_TIF, C_POST, C_EXPIRY, C_TS, C_PROTECT) = range(
    len(COMMAND_FIELDS)
)
N_CMD_COLS = len(COMMAND_FIELDS)
(
    V_TYPE,
    V_CMD,
    V_ORDER,
    V_SIDE,
    V_PRICE,
    V_QTY,
    V_REM,
    V_REASON,
    V_MAKER,
    V_TAKER,
    V_MAKER_OWNER,
    V_TAKER_OWNER,
    V_MAKER_REM,
    V_TAKER_REM,
) = range(len(EVENT_FIELDS))
N_EVENT_COLS = len(EVENT_FIELDS)

# A command emits at most this many events besides one per live order it touches
# (ACCEPTED/AMENDED, VOLATILITY, a final CANCELLED, AUCTION_UNCROSSED, with margin).
# process_batch demands EVENT_SLACK + live orders free rows before each command, so
# a command never runs out of room half-way.
EVENT_SLACK = 8

# Stop reasons of _take.
STOP_NONE, STOP_STP, STOP_BAND = 0, 1, 2

_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads sequential ids

# Compiled without numba's reference-counted runtime: nothing here allocates, and
# without it numba emits no atomic incref/decref around every array passed to a call,
# which cost more than the matching itself (2.8 M -> 6 M commands/s).
_jit = njit(cache=True, _nrt=False)
# The per-command dispatch chain (one or two call sites each) is inlined by numba:
# a call still costs about 10 ns of argument passing, a tenth of a command's budget
# (10 M -> 14 M commands/s). Inlining more gains nothing and slows compilation.
_jit_inline = njit(cache=True, _nrt=False, inline="always")

# --------------------------------------------------------------------------- id map


@_jit
def _home(b, key):
    return np.int64((np.uint64(key) * _HASH_MUL) >> np.uint64(64 - b[S_HBITS]))


@_jit
def hash_find(b, key):
    """Slot of live order ``key``, or -1."""
    hb = b[S_HASH]
    mask = (1 << b[S_HBITS]) - 1
    i = _home(b, key)
    while True:
        k = b[hb + 2 * i]
        if k == key:
            return b[hb + 2 * i + 1]
        if k == 0:
            return -1
        i = (i + 1) & mask


@_jit
def _hash_insert(b, key, slot):
    hb = b[S_HASH]
    mask = (1 << b[S_HBITS]) - 1
    i = _home(b, key)
    while b[hb + 2 * i] != 0:
        i = (i + 1) & mask
    b[hb + 2 * i] = key
    b[hb + 2 * i + 1] = slot


@_jit
def _hash_delete(b, key):
    # Backward-shift deletion keeps probe chains intact without tombstones, so lookups
    # never slow down as orders come and go.
    hb = b[S_HASH]
    mask = (1 << b[S_HBITS]) - 1
    i = _home(b, key)
    while b[hb + 2 * i] != key:
        i = (i + 1) & mask
    b[hb + 2 * i] = 0
    j = i
    while True:
        j = (j + 1) & mask
        k = b[hb + 2 * j]
        if k == 0:
            return
        h = _home(b, k)
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


@_jit
def _heap_less(b, x, y):
    ob = b[S_ORD]
    ex = b[ob + x * N_ORDER_COLS + O_EXPIRY]
    ey = b[ob + y * N_ORDER_COLS + O_EXPIRY]
    if ex != ey:
        return ex < ey
    return b[ob + x * N_ORDER_COLS + O_ID] < b[ob + y * N_ORDER_COLS + O_ID]


@_jit
def _heap_up(b, pos):
    hp = b[S_HEAP]
    pp = b[S_HPOS]
    slot = b[hp + pos]
    while pos > 0:
        parent = (pos - 1) >> 1
        p = b[hp + parent]
        if not _heap_less(b, slot, p):
            break
        b[hp + pos] = p
        b[pp + p] = pos
        pos = parent
    b[hp + pos] = slot
    b[pp + slot] = pos


@_jit
def _heap_down(b, pos):
    hp = b[S_HEAP]
    pp = b[S_HPOS]
    n = b[S_HEAP_N]
    slot = b[hp + pos]
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and _heap_less(b, b[hp + child + 1], b[hp + child]):
            child += 1
        c = b[hp + child]
        if not _heap_less(b, c, slot):
            break
        b[hp + pos] = c
        b[pp + c] = pos
        pos = child
    b[hp + pos] = slot
    b[pp + slot] = pos


@_jit
def _heap_push(b, slot):
    n = b[S_HEAP_N]
    b[b[S_HEAP] + n] = slot
    b[b[S_HPOS] + slot] = n
    b[S_HEAP_N] = n + 1
    _heap_up(b, n)


@_jit
def _heap_remove(b, slot):
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


@_jit
def _emit(ev, ne, typ, ci, oid, side, price, qty, rem, reason):
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


@_jit
def _emit_trade(ev, ne, ci, tid, side, price, qty, trem, reason, mid, mown, town, mrem):
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


@_jit
def _emit_order(ev, ne, typ, ci, b, slot, qty, rem, reason):
    """Event about resting order ``slot`` (CANCELLED, EXPIRED, AMENDED)."""
    o = b[S_ORD] + slot * N_ORDER_COLS
    return _emit(ev, ne, typ, ci, b[o + O_ID], b[o + O_META] & 1, b[o + O_PRICE], qty, rem, reason)


@_jit
def _reject(ev, ne, cmds, i, reason):
    """A refused command: echo its own fields."""
    return _emit(
        ev, ne, E_REJECTED, i, cmds[i, C_ID], cmds[i, C_SIDE], cmds[i, C_PRICE], cmds[i, C_QTY], 0, reason
    )


# --------------------------------------------------------------------------- ladder


@_jit
def _link_tail(b, slot, side, lvl):
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


@_jit
def _unlink(b, slot):
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


@_jit
def _release(b, slot):
    """Forget a slot that is no longer in any FIFO: id map, GTD heap, free chain."""
    o = b[S_ORD] + slot * N_ORDER_COLS
    _hash_delete(b, b[o + O_ID])
    if b[o + O_EXPIRY] > 0:
        _heap_remove(b, slot)
    b[o + O_ID] = 0
    b[o + O_QTY] = 0
    b[o + O_NEXT] = b[S_FREE]
    b[S_FREE] = slot


@_jit
def _remove(b, slot):
    _unlink(b, slot)
    _release(b, slot)


@_jit_inline
def _rest(b, oid, owner, side, price, qty, post, expiry):
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
    _link_tail(b, slot, side, price - b[S_BASE])
    _hash_insert(b, oid, slot)
    if expiry > 0:
        _heap_push(b, slot)


@_jit
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


@_jit
def _ladder_check(b, price):
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


# ------------------------------------------------------------------------- matching


@_jit
def _crosses(b, side, price):
    """Would an order at ``price`` meet the best opposite level?"""
    if side == BUY:
        best = b[S_BEST_ASK]
        return best >= 0 and price >= b[S_BASE] + best
    best = b[S_BEST_BID]
    return best >= 0 and price <= b[S_BASE] + best


@_jit
def _outside_band(b, price):
    ref = b[S_REF]
    band = b[S_BAND]
    return band > 0 and ref > 0 and (price > ref + band or price < ref - band)


@_jit
def _fok_fillable(b, side, limit, qty, owner):
    """Would ``qty`` fill completely, given the limit, the band and STP?

    Walks the same orders, in the same order, as _take would, without touching them.
    """
    base = b[S_BASE]
    span = b[S_SPAN]
    ob = b[S_ORD]
    lb = b[S_LVL]
    off = 4 * (1 - side)
    stp_skips = b[S_STP] == EXPIRE_MAKER
    lvl = b[S_BEST_ASK] if side == BUY else b[S_BEST_BID]
    if lvl < 0:
        return False
    while 0 <= lvl < span:
        price = base + lvl
        if (side == BUY and price > limit) or (side == SELL and price < limit):
            return False
        if _outside_band(b, price):
            return False
        m = b[lb + lvl * N_LEVEL_COLS + off + L_HEAD]
        while m >= 0:
            o = ob + m * N_ORDER_COLS
            if b[o + O_OWNER] == owner:
                if not stp_skips:
                    return False
            else:
                qty -= b[o + O_QTY]
                if qty <= 0:
                    return True
            m = b[o + O_NEXT]
        lvl += 1 if side == BUY else -1
    return False


@_jit
def _take(b, ev, ne, ci, oid, owner, side, limit, qty):
    """Match an incoming order against the opposite side in price-time priority.

    Returns (lots left, STOP_* reason, events written). Makers fully filled or removed
    by STP leave the book here; the caller decides what happens to the taker's rest.
    """
    base = b[S_BASE]
    stp = b[S_STP]
    ob = b[S_ORD]
    lb = b[S_LVL]
    off = 4 * (1 - side)
    cursor = S_BEST_ASK if side == BUY else S_BEST_BID
    while qty > 0:
        lvl = b[cursor]
        if lvl < 0:
            break
        price = base + lvl
        if side == BUY:
            if price > limit:
                break
        elif price < limit:
            break
        if _outside_band(b, price):
            ne = _emit(ev, ne, E_VOLATILITY, ci, oid, side, price, qty, qty, R_BAND)
            b[S_MODE] = AUCTION
            return qty, STOP_BAND, ne
        row = lb + lvl * N_LEVEL_COLS + off
        m = b[row + L_HEAD]
        while m >= 0 and qty > 0:
            o = ob + m * N_ORDER_COLS
            nxt = b[o + O_NEXT]
            mown = b[o + O_OWNER]
            if mown == owner:
                if stp == EXPIRE_TAKER:
                    return qty, STOP_STP, ne
                ne = _emit_order(ev, ne, E_CANCELLED, ci, b, m, b[o + O_QTY], 0, R_STP)
                _remove(b, m)
                if stp == EXPIRE_BOTH:
                    return qty, STOP_STP, ne
                m = nxt
                continue
            mq = b[o + O_QTY]
            q = qty if qty < mq else mq
            qty -= q
            mq -= q
            ne = _emit_trade(ev, ne, ci, oid, side, price, q, qty, R_NONE, b[o + O_ID], mown, owner, mq)
            b[row + L_QTY] -= q
            b[o + O_QTY] = mq
            if mq == 0:
                _remove(b, m)
            m = nxt
    return qty, STOP_NONE, ne


@_jit
def _enter(b, ev, ne, ci, oid, owner, side, price, qty, tif, post, expiry, is_market, is_amend):
    """An order that passed validation: check post-only/FOK, trade, then rest or cancel.

    ``price`` is the limit (for a market order, the protection limit). An amended order
    re-enters here with ``is_amend``: its AMENDED event and post-only check came first.
    """
    crosses = b[S_MODE] == CONTINUOUS and _crosses(b, side, price)
    if not is_amend:
        if post and crosses:
            return _emit(ev, ne, E_REJECTED, ci, oid, side, price, qty, 0, R_POST_ONLY)
        if tif == FOK and not _fok_fillable(b, side, price, qty, owner):
            return _emit(ev, ne, E_REJECTED, ci, oid, side, price, qty, 0, R_FOK)
        ne = _emit(ev, ne, E_ACCEPTED, ci, oid, side, price, qty, qty, R_NONE)
    stop = STOP_NONE
    if crosses:
        qty, stop, ne = _take(b, ev, ne, ci, oid, owner, side, price, qty)
    if qty == 0:
        return ne
    if stop == STOP_STP:
        return _emit(ev, ne, E_CANCELLED, ci, oid, side, price, qty, 0, R_STP)
    if is_market or tif == IOC or tif == FOK:
        if stop == STOP_BAND:
            reason = R_BAND
        elif is_market:
            reason = R_NO_LIQUIDITY
        else:
            reason = R_IOC
        return _emit(ev, ne, E_CANCELLED, ci, oid, side, price, qty, 0, reason)
    _rest(b, oid, owner, side, price, qty, post, expiry)
    return ne


# ------------------------------------------------------------------------- commands


@_jit_inline
def _limit(cmds, i, ev, ne, b):
    oid = cmds[i, C_ID]
    side = cmds[i, C_SIDE]
    price = cmds[i, C_PRICE]
    qty = cmds[i, C_QTY]
    tif = cmds[i, C_TIF]
    post = cmds[i, C_POST] != 0
    expiry = cmds[i, C_EXPIRY]
    if oid <= 0:
        return OK, _reject(ev, ne, cmds, i, R_INVALID_ORDER_ID)
    if side != BUY and side != SELL:
        return OK, _reject(ev, ne, cmds, i, R_INVALID_SIDE)
    if qty <= 0 or qty > Q_MAX:
        return OK, _reject(ev, ne, cmds, i, R_INVALID_QTY)
    if price <= 0 or price > P_MAX:
        return OK, _reject(ev, ne, cmds, i, R_INVALID_PRICE)
    if tif < GTC or tif > FOK or (post and (tif == IOC or tif == FOK)):
        return OK, _reject(ev, ne, cmds, i, R_INVALID_TIF)
    if tif == GTD:
        if expiry <= cmds[i, C_TS]:
            return OK, _reject(ev, ne, cmds, i, R_INVALID_EXPIRY)
    else:
        expiry = 0
    if hash_find(b, oid) >= 0:
        return OK, _reject(ev, ne, cmds, i, R_DUPLICATE)
    if tif == IOC or tif == FOK:
        if b[S_MODE] == AUCTION:
            return OK, _reject(ev, ne, cmds, i, R_AUCTION_IN_PROGRESS)
    else:
        # Only an order that may rest needs its price on the ladder.
        check = _ladder_check(b, price)
        if check < 0:
            return OK, _reject(ev, ne, cmds, i, R_OUT_OF_RANGE)
        if check == NEED_LADDER:
            return NEED_LADDER, ne
        if b[S_FREE] < 0:
            return NEED_ORDERS, ne
    ne = _enter(b, ev, ne, i, oid, cmds[i, C_OWNER], side, price, qty, tif, post, expiry, False, False)
    return OK, ne


@_jit_inline
def _market(cmds, i, ev, ne, b):
    oid = cmds[i, C_ID]
    side = cmds[i, C_SIDE]
    qty = cmds[i, C_QTY]
    protect = cmds[i, C_PROTECT]
    if oid <= 0:
        return _reject(ev, ne, cmds, i, R_INVALID_ORDER_ID)
    if side != BUY and side != SELL:
        return _reject(ev, ne, cmds, i, R_INVALID_SIDE)
    if qty <= 0 or qty > Q_MAX:
        return _reject(ev, ne, cmds, i, R_INVALID_QTY)
    if cmds[i, C_POST] != 0:
        return _reject(ev, ne, cmds, i, R_INVALID_TIF)
    if protect < 0 or protect > P_MAX:
        return _reject(ev, ne, cmds, i, R_INVALID_PROTECTION)
    if hash_find(b, oid) >= 0:
        return _reject(ev, ne, cmds, i, R_DUPLICATE)
    if b[S_MODE] == AUCTION:
        return _reject(ev, ne, cmds, i, R_AUCTION_IN_PROGRESS)
    if side == BUY:
        best = b[S_BEST_ASK]
        if best < 0:
            return _reject(ev, ne, cmds, i, R_NO_LIQUIDITY)
        limit = b[S_BASE] + best + protect
    else:
        best = b[S_BEST_BID]
        if best < 0:
            return _reject(ev, ne, cmds, i, R_NO_LIQUIDITY)
        limit = max(b[S_BASE] + best - protect, 1)
    tif = FOK if cmds[i, C_TIF] == FOK else IOC
    return _enter(b, ev, ne, i, oid, cmds[i, C_OWNER], side, limit, qty, tif, False, 0, True, False)


@_jit_inline
def _cancel(cmds, i, ev, ne, b):
    slot = hash_find(b, cmds[i, C_ID]) if cmds[i, C_ID] > 0 else -1
    if slot < 0:
        return _reject(ev, ne, cmds, i, R_UNKNOWN)
    ne = _emit_order(ev, ne, E_CANCELLED, i, b, slot, b[b[S_ORD] + slot * N_ORDER_COLS + O_QTY], 0, R_USER)
    _remove(b, slot)
    return ne


@_jit
def _amend(cmds, i, ev, ne, b):
    """Quantity down keeps priority; quantity up or a new price goes to the back, and a
    new price may trade like an incoming order (with the order's own post-only flag)."""
    slot = hash_find(b, cmds[i, C_ID]) if cmds[i, C_ID] > 0 else -1
    if slot < 0:
        return OK, _reject(ev, ne, cmds, i, R_UNKNOWN)
    new_price = cmds[i, C_PRICE]
    new_qty = cmds[i, C_QTY]
    if new_price < 0 or new_price > P_MAX:
        return OK, _reject(ev, ne, cmds, i, R_INVALID_PRICE)
    if new_qty < 0 or new_qty > Q_MAX:
        return OK, _reject(ev, ne, cmds, i, R_INVALID_QTY)
    o = b[S_ORD] + slot * N_ORDER_COLS
    price = b[o + O_PRICE]
    qty = b[o + O_QTY]
    if new_price == 0:
        new_price = price
    if new_qty == 0:
        new_qty = qty
    side = b[o + O_META] & 1
    if new_price == price:
        if new_qty <= qty:
            b[b[S_LVL] + (price - b[S_BASE]) * N_LEVEL_COLS + 4 * side + L_QTY] -= qty - new_qty
            b[o + O_QTY] = new_qty
            return OK, _emit_order(ev, ne, E_AMENDED, i, b, slot, new_qty, new_qty, R_NONE)
        _unlink(b, slot)
        b[o + O_QTY] = new_qty
        _link_tail(b, slot, side, price - b[S_BASE])
        return OK, _emit_order(ev, ne, E_AMENDED, i, b, slot, new_qty, new_qty, R_LOST_PRIORITY)
    check = _ladder_check(b, new_price)
    if check < 0:
        return OK, _reject(ev, ne, cmds, i, R_OUT_OF_RANGE)
    if check == NEED_LADDER:
        return NEED_LADDER, ne
    post = (b[o + O_META] & META_POST) != 0
    if post and b[S_MODE] == CONTINUOUS and _crosses(b, side, new_price):
        return OK, _reject(ev, ne, cmds, i, R_POST_ONLY)
    oid = b[o + O_ID]
    owner = b[o + O_OWNER]
    expiry = b[o + O_EXPIRY]
    _remove(b, slot)
    ne = _emit(ev, ne, E_AMENDED, i, oid, side, new_price, new_qty, new_qty, R_LOST_PRIORITY)
    tif = GTD if expiry > 0 else GTC
    ne = _enter(b, ev, ne, i, oid, owner, side, new_price, new_qty, tif, post, expiry, False, True)
    return OK, ne


@_jit
def _expire_due(b, ev, ne, ci, ts):
    while b[S_HEAP_N] > 0:
        slot = b[b[S_HEAP]]
        o = b[S_ORD] + slot * N_ORDER_COLS
        if b[o + O_EXPIRY] > ts:
            break
        ne = _emit_order(ev, ne, E_EXPIRED, ci, b, slot, b[o + O_QTY], 0, R_NONE)
        _remove(b, slot)
    return ne


# -------------------------------------------------------------------------- auction


@_jit
def auction_price(b):
    """Uniform clearing price and volume of the book as it stands: (price, lots).

    Over every tick p between the best ask and the best bid (the only prices where
    anything executes): demand D(p) = bid lots at >= p, supply S(p) = ask lots at <= p.
    Keep the ticks with the most volume min(D, S); of those, the least |D - S|; then if
    every one left has D > S (buyers press) take the highest, if every one has D < S the
    lowest, otherwise the one nearest the reference price. (The kept ticks are always
    contiguous, because D only falls and S only rises with p, so two of them can only be
    equally near a reference that is itself kept.) (0, 0) when the book is not crossed.
    O(best bid - best ask) ticks.
    """
    bb = b[S_BEST_BID]
    ba = b[S_BEST_ASK]
    if bb < 0 or ba < 0 or bb < ba:
        return 0, 0
    base = b[S_BASE]
    ref = b[S_REF]
    lb = b[S_LVL]
    demand = 0
    for lvl in range(ba, bb + 1):
        demand += b[lb + lvl * N_LEVEL_COLS + L_QTY]
    supply = 0
    best_vol = -1
    best_imb = 0
    n_pos = 0
    n_neg = 0
    lo_p = 0
    hi_p = 0
    near_p = 0
    near_d = 0
    for lvl in range(ba, bb + 1):
        supply += b[lb + lvl * N_LEVEL_COLS + 4 + L_QTY]
        p = base + lvl
        vol = min(demand, supply)
        imb = demand - supply
        aimb = abs(imb)
        dist = abs(p - ref)
        if vol > best_vol or (vol == best_vol and aimb < best_imb):
            best_vol = vol
            best_imb = aimb
            n_pos = 0
            n_neg = 0
            lo_p = p
            near_p = p
            near_d = dist
        if vol == best_vol and aimb == best_imb:
            if imb > 0:
                n_pos += 1
            elif imb < 0:
                n_neg += 1
            hi_p = p
            if dist < near_d:
                near_p = p
                near_d = dist
        demand -= b[lb + lvl * N_LEVEL_COLS + L_QTY]
    if n_neg == 0 and n_pos > 0:
        return hi_p, best_vol
    if n_pos == 0 and n_neg > 0:
        return lo_p, best_vol
    return near_p, best_vol


@_jit
def _uncross(b, ev, ne, ci):
    """Execute the auction at its uniform price, buyers from the highest bid down and
    sellers from the lowest ask up, each in time order within a level; whatever is left
    stays for continuous trading, which the book returns to."""
    price, volume = auction_price(b)
    b[S_MODE] = CONTINUOUS
    if volume == 0:
        return _emit(ev, ne, E_AUCTION_UNCROSSED, ci, 0, BUY, 0, 0, 0, R_NONE)
    base = b[S_BASE]
    ob = b[S_ORD]
    lb = b[S_LVL]
    left = volume
    while left > 0:
        bs = b[lb + b[S_BEST_BID] * N_LEVEL_COLS + L_HEAD]
        ss = b[lb + b[S_BEST_ASK] * N_LEVEL_COLS + 4 + L_HEAD]
        bo = ob + bs * N_ORDER_COLS
        so = ob + ss * N_ORDER_COLS
        bq = b[bo + O_QTY]
        sq = b[so + O_QTY]
        q = min(bq, sq)
        bq -= q
        sq -= q
        left -= q
        ne = _emit_trade(
            ev, ne, ci, b[bo + O_ID], BUY, price, q, bq, R_AUCTION, b[so + O_ID], b[so + O_OWNER], b[bo + O_OWNER], sq
        )
        b[lb + (b[bo + O_PRICE] - base) * N_LEVEL_COLS + L_QTY] -= q
        b[lb + (b[so + O_PRICE] - base) * N_LEVEL_COLS + 4 + L_QTY] -= q
        b[bo + O_QTY] = bq
        b[so + O_QTY] = sq
        if bq == 0:
            _unlink(b, bs)
            _free_keeping_id(b, bs)
        if sq == 0:
            _unlink(b, ss)
            _free_keeping_id(b, ss)
    b[S_REF] = price
    return _emit(ev, ne, E_AUCTION_UNCROSSED, ci, 0, BUY, price, volume, 0, R_NONE)


@_jit
def _free_keeping_id(b, slot):
    """Free a filled slot but leave its id in the id map, for drop_filled_ids."""
    o = b[S_ORD] + slot * N_ORDER_COLS
    if b[o + O_EXPIRY] > 0:
        _heap_remove(b, slot)
    b[o + O_NEXT] = b[S_FREE]
    b[S_FREE] = slot


@njit(cache=True)
def drop_filled_ids(b, ev, lo, hi):
    """Remove from the id map every order that an uncross filled (TRADE rows lo..hi-1
    with nothing remaining on one side), in the order of their map positions.

    A large auction fills orders whose ids sit at random places in the map; deleting
    them one by one, as matching does, costs a cache miss each (about 50 ms for 300,000
    fills). Bucketed by position (a counting sort on the top bits), the deletions sweep
    the map front to back instead. Runs between two commands, so no lookup ever sees a
    freed slot. Uses numba's allocator, unlike the rest of the kernel.
    """
    ids = np.empty(2 * (hi - lo), dtype=np.int64)
    n = 0
    for r in range(lo, hi):
        if ev[r, V_TYPE] == E_TRADE:
            if ev[r, V_MAKER_REM] == 0:
                ids[n] = ev[r, V_MAKER]
                n += 1
            if ev[r, V_TAKER_REM] == 0:
                ids[n] = ev[r, V_TAKER]
                n += 1
    shift = max(b[S_HBITS] - 16, 0)
    starts = np.zeros((1 << (b[S_HBITS] - shift)) + 1, dtype=np.int64)
    for j in range(n):
        starts[(_home(b, ids[j]) >> shift) + 1] += 1
    for k in range(1, starts.shape[0]):
        starts[k] += starts[k - 1]
    ordered = np.empty(n, dtype=np.int64)
    for j in range(n):
        bucket = _home(b, ids[j]) >> shift
        ordered[starts[bucket]] = ids[j]
        starts[bucket] += 1
    for j in range(n):
        _hash_delete(b, ordered[j])


# ---------------------------------------------------------------------------- batch


@_jit_inline
def _command(cmds, i, ev, ne, b):
    """Apply command row ``i``; returns (status, events written)."""
    action = cmds[i, C_ACTION]
    ts = cmds[i, C_TS]
    b[S_LAST_TS] = ts
    if b[S_HEAP_N] > 0:
        ne = _expire_due(b, ev, ne, i, ts)
    if action == A_LIMIT:
        return _limit(cmds, i, ev, ne, b)
    if action == A_CANCEL:
        return OK, _cancel(cmds, i, ev, ne, b)
    if action == A_MARKET:
        return OK, _market(cmds, i, ev, ne, b)
    if action == A_AMEND:
        return _amend(cmds, i, ev, ne, b)
    if action == A_EXPIRE:
        return OK, ne
    if action == A_SET_AUCTION:
        if b[S_MODE] == AUCTION:
            return OK, _reject(ev, ne, cmds, i, R_WRONG_MODE)
        b[S_MODE] = AUCTION
        return OK, _emit(ev, ne, E_AUCTION_STARTED, i, 0, BUY, 0, 0, 0, R_NONE)
    if action == A_UNCROSS:
        if b[S_MODE] != AUCTION:
            return OK, _reject(ev, ne, cmds, i, R_WRONG_MODE)
        b[S_DROP_FROM] = ne
        return DROP_IDS, _uncross(b, ev, ne, i)
    if action == A_SET_BAND:
        ref = cmds[i, C_PRICE]
        band = cmds[i, C_QTY]
        if ref < 0 or ref > P_MAX:
            return OK, _reject(ev, ne, cmds, i, R_INVALID_PRICE)
        if band < 0 or band > P_MAX:
            return OK, _reject(ev, ne, cmds, i, R_INVALID_QTY)
        b[S_REF] = ref
        b[S_BAND] = band
        return OK, _emit(ev, ne, E_BAND_SET, i, 0, BUY, ref, band, 0, R_NONE)
    return OK, _reject(ev, ne, cmds, i, R_INVALID_ACTION)


@_jit
def process_batch(cmds, start, ev, ne, b, lat):
    """Apply commands ``cmds[start:]`` in order, appending events to ``ev`` from row ``ne``.

    cmds    int64[n, N_CMD_COLS]   rows laid out as COMMAND_DTYPE.
    ev      int64[m, N_EVENT_COLS] rows laid out as EVENT_DTYPE.
    b       int64[...]             the book's arena (module docstring).
    lat     int64[n] or int64[0]   if non-empty, lat[i] = cycle-counter ticks spent on
                                   command i (see matching.clock); costs ~10 ns/command.
    Returns (status, next command, events written). status OK: all done. NEED_EVENTS,
    NEED_ORDERS, NEED_LADDER: command ``next`` was not applied (any GTD expiries it
    triggered were, and their events are counted); grow ``ev``, the order pool or the
    ladder (to cover b[S_NEED_LO]..b[S_NEED_HI]) and call again from ``next``.
    DROP_IDS: an UNCROSS was applied; call drop_filled_ids(b, ev, b[S_DROP_FROM], events
    written) before calling again from ``next``.
    """
    n = cmds.shape[0]
    cap = ev.shape[0]
    timing = lat.shape[0] > 0
    t0 = np.uint64(0)
    i = start
    while i < n:
        if cap - ne < b[S_N_BID] + b[S_N_ASK] + EVENT_SLACK:
            return NEED_EVENTS, i, ne
        if timing:
            t0 = rdtsc()
        status, ne = _command(cmds, i, ev, ne, b)
        if status != OK and status != DROP_IDS:
            return status, i, ne
        if timing:
            lat[i] = np.int64(rdtsc() - t0)
        i += 1
        if status == DROP_IDS:
            return DROP_IDS, i, ne
    return OK, n, ne


# ---------------------------------------------------- building, growing, inspecting


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


@_jit
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
            _hash_insert(new, old[oh + 2 * j], old[oh + 2 * j + 1])


@_jit
def load_orders(b, rows):
    """Rest ``rows`` (int64[n, 7] laid out as ORDER_DTYPE) in the given order, without
    matching. The caller has checked them and sized the pool and ladder."""
    for r in range(rows.shape[0]):
        _rest(b, rows[r, 0], rows[r, 1], rows[r, 2], rows[r, 3], rows[r, 4], rows[r, 6] != 0, rows[r, 5])


@_jit
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


@_jit
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


@_jit
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
        if pos > 0 and _heap_less(b, slot, b[b[S_HEAP] + ((pos - 1) >> 1)]):
            return BAD_HEAP, slot
    return 0, 0
