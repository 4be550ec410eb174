"""Matching: incoming orders against the ladder, the other commands and the batch loop that
the Python wrapper calls once per batch (the call auction is in ``auction``)."""

from __future__ import annotations

import numpy as np

from ..clock import rdtsc
from .layout import (
    AUCTION,
    A_AMEND,
    A_CANCEL,
    A_EXPIRE,
    A_LIMIT,
    A_MARKET,
    A_SET_AUCTION,
    A_SET_BAND,
    A_UNCROSS,
    BUY,
    CONTINUOUS,
    C_ACTION,
    C_EXPIRY,
    C_ID,
    C_OWNER,
    C_POST,
    C_PRICE,
    C_PROTECT,
    C_QTY,
    C_SIDE,
    C_TIF,
    C_TS,
    DROP_IDS,
    EVENT_SLACK,
    EXPIRE_BOTH,
    EXPIRE_MAKER,
    EXPIRE_TAKER,
    E_ACCEPTED,
    E_AMENDED,
    E_AUCTION_STARTED,
    E_BAND_SET,
    E_CANCELLED,
    E_EXPIRED,
    E_REJECTED,
    E_VOLATILITY,
    FOK,
    GTC,
    GTD,
    IOC,
    jit,
    jit_inline,
    L_HEAD,
    L_QTY,
    META_POST,
    NEED_EVENTS,
    NEED_LADDER,
    NEED_ORDERS,
    N_LEVEL_COLS,
    N_ORDER_COLS,
    OK,
    O_EXPIRY,
    O_ID,
    O_META,
    O_NEXT,
    O_OWNER,
    O_PRICE,
    O_QTY,
    P_MAX,
    Q_MAX,
    R_AUCTION_IN_PROGRESS,
    R_BAND,
    R_DUPLICATE,
    R_FOK,
    R_INVALID_ACTION,
    R_INVALID_EXPIRY,
    R_INVALID_ORDER_ID,
    R_INVALID_PRICE,
    R_INVALID_PROTECTION,
    R_INVALID_QTY,
    R_INVALID_SIDE,
    R_INVALID_TIF,
    R_IOC,
    R_LOST_PRIORITY,
    R_NONE,
    R_NO_LIQUIDITY,
    R_OUT_OF_RANGE,
    R_POST_ONLY,
    R_STP,
    R_UNKNOWN,
    R_USER,
    R_WRONG_MODE,
    SELL,
    STOP_BAND,
    STOP_NONE,
    STOP_STP,
    S_BAND,
    S_BASE,
    S_BEST_ASK,
    S_BEST_BID,
    S_DROP_FROM,
    S_FREE,
    S_HEAP,
    S_HEAP_N,
    S_LAST_TS,
    S_LVL,
    S_MODE,
    S_N_ASK,
    S_N_BID,
    S_ORD,
    S_REF,
    S_SPAN,
    S_STP,
)
from .store import (
    emit,
    emit_order,
    emit_trade,
    hash_find,
    ladder_check,
    link_tail,
    reject,
    remove,
    rest,
    unlink,
)
from .auction import _uncross


# ------------------------------------------------------------------------- matching


@jit
def _crosses(b, side, price):
    """Would an order at ``price`` meet the best opposite level?"""
    if side == BUY:
        best = b[S_BEST_ASK]
        return best >= 0 and price >= b[S_BASE] + best
    best = b[S_BEST_BID]
    return best >= 0 and price <= b[S_BASE] + best


@jit
def _outside_band(b, price):
    ref = b[S_REF]
    band = b[S_BAND]
    return band > 0 and ref > 0 and (price > ref + band or price < ref - band)


@jit
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


@jit
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
            ne = emit(ev, ne, E_VOLATILITY, ci, oid, side, price, qty, qty, R_BAND)
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
                ne = emit_order(ev, ne, E_CANCELLED, ci, b, m, b[o + O_QTY], 0, R_STP)
                remove(b, m)
                if stp == EXPIRE_BOTH:
                    return qty, STOP_STP, ne
                m = nxt
                continue
            mq = b[o + O_QTY]
            q = qty if qty < mq else mq
            qty -= q
            mq -= q
            ne = emit_trade(ev, ne, ci, oid, side, price, q, qty, R_NONE, b[o + O_ID], mown, owner, mq)
            b[row + L_QTY] -= q
            b[o + O_QTY] = mq
            if mq == 0:
                remove(b, m)
            m = nxt
    return qty, STOP_NONE, ne


@jit
def _enter(b, ev, ne, ci, oid, owner, side, price, qty, tif, post, expiry, is_market, is_amend):
    """An order that passed validation: check post-only/FOK, trade, then rest or cancel.

    ``price`` is the limit (for a market order, the protection limit). An amended order
    re-enters here with ``is_amend``: its AMENDED event and post-only check came first.
    """
    crosses = b[S_MODE] == CONTINUOUS and _crosses(b, side, price)
    if not is_amend:
        if post and crosses:
            return emit(ev, ne, E_REJECTED, ci, oid, side, price, qty, 0, R_POST_ONLY)
        if tif == FOK and not _fok_fillable(b, side, price, qty, owner):
            return emit(ev, ne, E_REJECTED, ci, oid, side, price, qty, 0, R_FOK)
        ne = emit(ev, ne, E_ACCEPTED, ci, oid, side, price, qty, qty, R_NONE)
    stop = STOP_NONE
    if crosses:
        qty, stop, ne = _take(b, ev, ne, ci, oid, owner, side, price, qty)
    if qty == 0:
        return ne
    if stop == STOP_STP:
        return emit(ev, ne, E_CANCELLED, ci, oid, side, price, qty, 0, R_STP)
    if is_market or tif == IOC or tif == FOK:
        if stop == STOP_BAND:
            reason = R_BAND
        elif is_market:
            reason = R_NO_LIQUIDITY
        else:
            reason = R_IOC
        return emit(ev, ne, E_CANCELLED, ci, oid, side, price, qty, 0, reason)
    rest(b, oid, owner, side, price, qty, post, expiry)
    return ne


# ------------------------------------------------------------------------- commands


@jit_inline
def _limit(cmds, i, ev, ne, b):
    oid = cmds[i, C_ID]
    side = cmds[i, C_SIDE]
    price = cmds[i, C_PRICE]
    qty = cmds[i, C_QTY]
    tif = cmds[i, C_TIF]
    post = cmds[i, C_POST] != 0
    expiry = cmds[i, C_EXPIRY]
    if oid <= 0:
        return OK, reject(ev, ne, cmds, i, R_INVALID_ORDER_ID)
    if side != BUY and side != SELL:
        return OK, reject(ev, ne, cmds, i, R_INVALID_SIDE)
    if qty <= 0 or qty > Q_MAX:
        return OK, reject(ev, ne, cmds, i, R_INVALID_QTY)
    if price <= 0 or price > P_MAX:
        return OK, reject(ev, ne, cmds, i, R_INVALID_PRICE)
    if tif < GTC or tif > FOK or (post and (tif == IOC or tif == FOK)):
        return OK, reject(ev, ne, cmds, i, R_INVALID_TIF)
    if tif == GTD:
        if expiry <= cmds[i, C_TS]:
            return OK, reject(ev, ne, cmds, i, R_INVALID_EXPIRY)
    else:
        expiry = 0
    if hash_find(b, oid) >= 0:
        return OK, reject(ev, ne, cmds, i, R_DUPLICATE)
    if tif == IOC or tif == FOK:
        if b[S_MODE] == AUCTION:
            return OK, reject(ev, ne, cmds, i, R_AUCTION_IN_PROGRESS)
    else:
        # Only an order that may rest needs its price on the ladder.
        check = ladder_check(b, price)
        if check < 0:
            return OK, reject(ev, ne, cmds, i, R_OUT_OF_RANGE)
        if check == NEED_LADDER:
            return NEED_LADDER, ne
        if b[S_FREE] < 0:
            return NEED_ORDERS, ne
    ne = _enter(b, ev, ne, i, oid, cmds[i, C_OWNER], side, price, qty, tif, post, expiry, False, False)
    return OK, ne


@jit_inline
def _market(cmds, i, ev, ne, b):
    oid = cmds[i, C_ID]
    side = cmds[i, C_SIDE]
    qty = cmds[i, C_QTY]
    protect = cmds[i, C_PROTECT]
    if oid <= 0:
        return reject(ev, ne, cmds, i, R_INVALID_ORDER_ID)
    if side != BUY and side != SELL:
        return reject(ev, ne, cmds, i, R_INVALID_SIDE)
    if qty <= 0 or qty > Q_MAX:
        return reject(ev, ne, cmds, i, R_INVALID_QTY)
    if cmds[i, C_POST] != 0:
        return reject(ev, ne, cmds, i, R_INVALID_TIF)
    if protect < 0 or protect > P_MAX:
        return reject(ev, ne, cmds, i, R_INVALID_PROTECTION)
    if hash_find(b, oid) >= 0:
        return reject(ev, ne, cmds, i, R_DUPLICATE)
    if b[S_MODE] == AUCTION:
        return reject(ev, ne, cmds, i, R_AUCTION_IN_PROGRESS)
    if side == BUY:
        best = b[S_BEST_ASK]
        if best < 0:
            return reject(ev, ne, cmds, i, R_NO_LIQUIDITY)
        limit = b[S_BASE] + best + protect
    else:
        best = b[S_BEST_BID]
        if best < 0:
            return reject(ev, ne, cmds, i, R_NO_LIQUIDITY)
        limit = max(b[S_BASE] + best - protect, 1)
    tif = FOK if cmds[i, C_TIF] == FOK else IOC
    return _enter(b, ev, ne, i, oid, cmds[i, C_OWNER], side, limit, qty, tif, False, 0, True, False)


@jit_inline
def _cancel(cmds, i, ev, ne, b):
    slot = hash_find(b, cmds[i, C_ID]) if cmds[i, C_ID] > 0 else -1
    if slot < 0:
        return reject(ev, ne, cmds, i, R_UNKNOWN)
    ne = emit_order(ev, ne, E_CANCELLED, i, b, slot, b[b[S_ORD] + slot * N_ORDER_COLS + O_QTY], 0, R_USER)
    remove(b, slot)
    return ne


@jit
def _amend(cmds, i, ev, ne, b):
    """Quantity down keeps priority; quantity up or a new price goes to the back, and a
    new price may trade like an incoming order (with the order's own post-only flag)."""
    slot = hash_find(b, cmds[i, C_ID]) if cmds[i, C_ID] > 0 else -1
    if slot < 0:
        return OK, reject(ev, ne, cmds, i, R_UNKNOWN)
    new_price = cmds[i, C_PRICE]
    new_qty = cmds[i, C_QTY]
    if new_price < 0 or new_price > P_MAX:
        return OK, reject(ev, ne, cmds, i, R_INVALID_PRICE)
    if new_qty < 0 or new_qty > Q_MAX:
        return OK, reject(ev, ne, cmds, i, R_INVALID_QTY)
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
            return OK, emit_order(ev, ne, E_AMENDED, i, b, slot, new_qty, new_qty, R_NONE)
        unlink(b, slot)
        b[o + O_QTY] = new_qty
        link_tail(b, slot, side, price - b[S_BASE])
        return OK, emit_order(ev, ne, E_AMENDED, i, b, slot, new_qty, new_qty, R_LOST_PRIORITY)
    check = ladder_check(b, new_price)
    if check < 0:
        return OK, reject(ev, ne, cmds, i, R_OUT_OF_RANGE)
    if check == NEED_LADDER:
        return NEED_LADDER, ne
    post = (b[o + O_META] & META_POST) != 0
    if post and b[S_MODE] == CONTINUOUS and _crosses(b, side, new_price):
        return OK, reject(ev, ne, cmds, i, R_POST_ONLY)
    oid = b[o + O_ID]
    owner = b[o + O_OWNER]
    expiry = b[o + O_EXPIRY]
    remove(b, slot)
    ne = emit(ev, ne, E_AMENDED, i, oid, side, new_price, new_qty, new_qty, R_LOST_PRIORITY)
    tif = GTD if expiry > 0 else GTC
    ne = _enter(b, ev, ne, i, oid, owner, side, new_price, new_qty, tif, post, expiry, False, True)
    return OK, ne


@jit
def _expire_due(b, ev, ne, ci, ts):
    while b[S_HEAP_N] > 0:
        slot = b[b[S_HEAP]]
        o = b[S_ORD] + slot * N_ORDER_COLS
        if b[o + O_EXPIRY] > ts:
            break
        ne = emit_order(ev, ne, E_EXPIRED, ci, b, slot, b[o + O_QTY], 0, R_NONE)
        remove(b, slot)
    return ne


# ---------------------------------------------------------------------------- batch


@jit_inline
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
            return OK, reject(ev, ne, cmds, i, R_WRONG_MODE)
        b[S_MODE] = AUCTION
        return OK, emit(ev, ne, E_AUCTION_STARTED, i, 0, BUY, 0, 0, 0, R_NONE)
    if action == A_UNCROSS:
        if b[S_MODE] != AUCTION:
            return OK, reject(ev, ne, cmds, i, R_WRONG_MODE)
        b[S_DROP_FROM] = ne
        return DROP_IDS, _uncross(b, ev, ne, i)
    if action == A_SET_BAND:
        ref = cmds[i, C_PRICE]
        band = cmds[i, C_QTY]
        if ref < 0 or ref > P_MAX:
            return OK, reject(ev, ne, cmds, i, R_INVALID_PRICE)
        if band < 0 or band > P_MAX:
            return OK, reject(ev, ne, cmds, i, R_INVALID_QTY)
        b[S_REF] = ref
        b[S_BAND] = band
        return OK, emit(ev, ne, E_BAND_SET, i, 0, BUY, ref, band, 0, R_NONE)
    return OK, reject(ev, ne, cmds, i, R_INVALID_ACTION)


@jit
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
