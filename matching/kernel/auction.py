"""The call auction: the uniform clearing price, the uncross, and clearing the filled orders
from the id map in bulk afterwards."""

from __future__ import annotations

import numpy as np
from numba import njit

from .layout import (
    BUY,
    CONTINUOUS,
    E_AUCTION_UNCROSSED,
    E_TRADE,
    jit,
    L_HEAD,
    L_QTY,
    N_LEVEL_COLS,
    N_ORDER_COLS,
    O_EXPIRY,
    O_ID,
    O_NEXT,
    O_OWNER,
    O_PRICE,
    O_QTY,
    R_AUCTION,
    R_NONE,
    S_BASE,
    S_BEST_ASK,
    S_BEST_BID,
    S_FREE,
    S_HBITS,
    S_LVL,
    S_MODE,
    S_ORD,
    S_REF,
    V_MAKER,
    V_MAKER_REM,
    V_TAKER,
    V_TAKER_REM,
    V_TYPE,
)
from .store import (
    emit,
    emit_trade,
    hash_delete,
    heap_remove,
    home,
    unlink,
)


@jit
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


@jit
def _uncross(b, ev, ne, ci):
    """Execute the auction at its uniform price, buyers from the highest bid down and
    sellers from the lowest ask up, each in time order within a level; whatever is left
    stays for continuous trading, which the book returns to."""
    price, volume = auction_price(b)
    b[S_MODE] = CONTINUOUS
    if volume == 0:
        return emit(ev, ne, E_AUCTION_UNCROSSED, ci, 0, BUY, 0, 0, 0, R_NONE)
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
        ne = emit_trade(
            ev, ne, ci, b[bo + O_ID], BUY, price, q, bq, R_AUCTION, b[so + O_ID], b[so + O_OWNER], b[bo + O_OWNER], sq
        )
        b[lb + (b[bo + O_PRICE] - base) * N_LEVEL_COLS + L_QTY] -= q
        b[lb + (b[so + O_PRICE] - base) * N_LEVEL_COLS + 4 + L_QTY] -= q
        b[bo + O_QTY] = bq
        b[so + O_QTY] = sq
        if bq == 0:
            unlink(b, bs)
            _free_keeping_id(b, bs)
        if sq == 0:
            unlink(b, ss)
            _free_keeping_id(b, ss)
    b[S_REF] = price
    return emit(ev, ne, E_AUCTION_UNCROSSED, ci, 0, BUY, price, volume, 0, R_NONE)


@jit
def _free_keeping_id(b, slot):
    """Free a filled slot but leave its id in the id map, for drop_filled_ids."""
    o = b[S_ORD] + slot * N_ORDER_COLS
    if b[o + O_EXPIRY] > 0:
        heap_remove(b, slot)
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
        starts[(home(b, ids[j]) >> shift) + 1] += 1
    for k in range(1, starts.shape[0]):
        starts[k] += starts[k - 1]
    ordered = np.empty(n, dtype=np.int64)
    for j in range(n):
        bucket = home(b, ids[j]) >> shift
        ordered[starts[bucket]] = ids[j]
        starts[bucket] += 1
    for j in range(n):
        hash_delete(b, ordered[j])
