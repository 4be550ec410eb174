"""Constants of the compiled book: codes, the arena's header and record layouts, and the
compile options every kernel function uses."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..types import (
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

HASH_MUL = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads sequential ids

# Compiled without numba's reference-counted runtime: nothing here allocates, and
# without it numba emits no atomic incref/decref around every array passed to a call,
# which cost more than the matching itself (2.8 M -> 6 M commands/s).
jit = njit(cache=True, _nrt=False)
# The per-command dispatch chain (one or two call sites each) is inlined by numba:
# a call still costs about 10 ns of argument passing, a tenth of a command's budget
# (10 M -> 14 M commands/s). Inlining more gains nothing and slows compilation.
jit_inline = njit(cache=True, _nrt=False, inline="always")
