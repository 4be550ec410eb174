"""Codes and record layouts shared by the numba book, the reference book and callers.

Every record field is int64 so that a batch of commands (or events) is, byte for byte,
a C-contiguous ``int64[n, k]`` matrix: the compiled kernel reads and writes plain
integer matrices and the Python side views them as structured arrays without copying.

Units: prices are integer ticks (the exchange uses 1 tick = 0.01 CNY per SCU·h),
quantities are integer lots (SCU·h), times (``ts``, ``expiry``) are int64 in whatever
single clock the caller chooses (the exchange uses microseconds since the epoch).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Action(IntEnum):
    """``Command.action``. Zero is deliberately not an action, so an unset row is rejected."""

    LIMIT = 1  #: limit order; ``tif`` says how long it lives
    MARKET = 2  #: market order, limited to ``protect_ticks`` through the best price on arrival
    CANCEL = 3  #: cancel the live order ``order_id``
    AMEND = 4  #: ``price`` = new limit (0 keeps it), ``qty`` = new remaining qty (0 keeps it)
    EXPIRE = 5  #: only sweep GTD orders with ``expiry <= ts`` (every command does this first)
    SET_AUCTION = 6  #: stop matching and start collecting orders for a call auction
    UNCROSS = 7  #: clear the auction at one price and return to continuous trading
    SET_BAND = 8  #: ``price`` = new reference price (0: none), ``qty`` = band in ticks (0: off)


class Side(IntEnum):
    BUY = 0
    SELL = 1


class Tif(IntEnum):
    """Time in force of a limit order. Market orders are IOC unless ``tif`` is FOK."""

    GTC = 0  #: good till cancelled (the exchange cancels at gate closure)
    GTD = 1  #: good till ``expiry`` (same clock as ``ts``)
    IOC = 2  #: immediate or cancel: the unfilled remainder is cancelled
    FOK = 3  #: fill or kill: fully filled at once or rejected without trading


class Mode(IntEnum):
    CONTINUOUS = 0
    AUCTION = 1  #: collecting orders for a call auction; nothing matches until UNCROSS


class Stp(IntEnum):
    """Self-trade prevention: what happens when a taker meets a maker with the same owner."""

    EXPIRE_TAKER = 0  #: cancel the taker's remainder, the maker stays
    EXPIRE_MAKER = 1  #: cancel the maker and keep matching
    EXPIRE_BOTH = 2  #: cancel both


class EventType(IntEnum):
    ACCEPTED = 1  #: a LIMIT or MARKET order passed validation (before any of its trades)
    REJECTED = 2  #: a command was refused; ``reason`` says why; nothing changed
    TRADE = 3  #: a fill; maker/taker columns filled in
    CANCELLED = 4  #: an order left the book or was not rested; ``reason`` says why
    EXPIRED = 5  #: a GTD order reached its expiry
    AMENDED = 6  #: an AMEND was applied; ``reason`` is LOST_PRIORITY when it moved to the back
    VOLATILITY = 7  #: a trade would have left the band; the book switched to auction
    AUCTION_STARTED = 8  #: SET_AUCTION took effect
    AUCTION_UNCROSSED = 9  #: ``price`` = clearing price (0: no cross), ``qty`` = volume
    BAND_SET = 10  #: SET_BAND took effect; ``price`` = reference, ``qty`` = band


class Reason(IntEnum):
    NONE = 0
    INVALID_ACTION = 1
    INVALID_ORDER_ID = 2  #: order ids must be > 0
    INVALID_SIDE = 3
    INVALID_PRICE = 4  #: limit price outside [1, MAX_PRICE], or a negative amend price
    INVALID_QTY = 5  #: qty outside [1, MAX_QTY], or a negative amend qty
    INVALID_TIF = 6  #: unknown tif, or post-only combined with IOC/FOK/market
    INVALID_EXPIRY = 7  #: GTD whose expiry is already due (``expiry <= ts``)
    INVALID_PROTECTION = 8  #: market ``protect_ticks`` outside [0, MAX_PRICE]
    DUPLICATE_ORDER_ID = 9  #: the id belongs to a live order
    UNKNOWN_ORDER = 10  #: CANCEL/AMEND of an id that is not live
    POST_ONLY_WOULD_TAKE = 11
    FOK_NOT_FILLABLE = 12
    NO_LIQUIDITY = 13  #: market order with nothing to trade against (reject or remainder)
    IOC_REMAINDER = 14
    STP = 15  #: self-trade prevention
    BAND = 16  #: the price band stopped matching (VOLATILITY) or cancelled an IOC remainder
    AUCTION_IN_PROGRESS = 17  #: IOC, FOK and market orders are refused while collecting
    WRONG_MODE = 18  #: SET_AUCTION while collecting, UNCROSS while continuous
    PRICE_OUT_OF_RANGE = 19  #: a resting price further than max_span_ticks from the book
    USER = 20  #: cancelled by a CANCEL command
    LOST_PRIORITY = 21  #: on AMENDED: the order went to the back of its (new) level
    AUCTION = 22  #: on TRADE: executed by an UNCROSS (no aggressor)


#: Largest accepted price and quantity. Far above any real value, small enough that
#: level totals and ``price + band`` never overflow int64.
MAX_PRICE = 1 << 52
MAX_QTY = 1 << 40

#: Default widest spread, in ticks, between resting prices on one book. The ladder is
#: an array over a window of at most this many ticks, 64 bytes each: 64 MiB at most.
DEFAULT_MAX_SPAN_TICKS = 1 << 20


def _int64_record(names: tuple[str, ...]) -> np.dtype:
    return np.dtype([(name, np.int64) for name in names])


#: One command. Fields (all int64):
#:   action        Action code.
#:   order_id      caller-assigned id, > 0, unique among live orders (the exchange makes it
#:                 unique for ever); for CANCEL/AMEND the order to change.
#:   owner         beneficial owner id; two orders with the same owner never trade (STP).
#:   side          Side.BUY or Side.SELL.
#:   price         limit price in ticks; AMEND: new price (0 = unchanged);
#:                 SET_BAND: reference price in ticks (0 = none). Ignored for MARKET.
#:   qty           lots; AMEND: new remaining lots (0 = unchanged); SET_BAND: band in ticks.
#:   tif           Tif code.
#:   post_only     1 = reject the order if it would take liquidity (GTC/GTD only).
#:   expiry        GTD expiry time, same clock as ts; ignored for other tifs.
#:   ts            command time; GTD orders with expiry <= ts expire before it is applied.
#:   protect_ticks MARKET: trade at most this many ticks through the best opposite price
#:                 seen on arrival.
COMMAND_FIELDS = (
    "action",
    "order_id",
    "owner",
    "side",
    "price",
    "qty",
    "tif",
    "post_only",
    "expiry",
    "ts",
    "protect_ticks",
)
COMMAND_DTYPE = _int64_record(COMMAND_FIELDS)

#: One event. Fields (all int64):
#:   type            EventType code.
#:   cmd_index       row of the command, within the batch passed to ``process``, that
#:                   caused the event.
#:   order_id        the order concerned (the taker for TRADE, 0 for auction/band events).
#:   side            that order's side (the taker's for TRADE; BUY for auction trades).
#:   price           ticks: limit price (ACCEPTED/REJECTED/CANCELLED/EXPIRED/AMENDED),
#:                   execution price (TRADE), price that would have traded (VOLATILITY),
#:                   clearing price (AUCTION_UNCROSSED), reference price (BAND_SET).
#:   qty             lots: order qty (ACCEPTED/REJECTED), traded (TRADE), removed
#:                   (CANCELLED/EXPIRED), new remaining (AMENDED), left when stopped
#:                   (VOLATILITY), auction volume (AUCTION_UNCROSSED), band (BAND_SET).
#:   remaining       lots the order has left after the event (taker's for TRADE).
#:   reason          Reason code (NONE when there is nothing to explain).
#:   maker_id, taker_id, maker_owner, taker_owner, maker_remaining, taker_remaining
#:                   TRADE only (0 otherwise). Auction trades report the buy order as
#:                   taker and the sell order as maker, with reason AUCTION.
EVENT_FIELDS = (
    "type",
    "cmd_index",
    "order_id",
    "side",
    "price",
    "qty",
    "remaining",
    "reason",
    "maker_id",
    "taker_id",
    "maker_owner",
    "taker_owner",
    "maker_remaining",
    "taker_remaining",
)
EVENT_DTYPE = _int64_record(EVENT_FIELDS)

#: One resting order, as ``Book.orders()`` returns it and ``Book.from_orders`` takes it.
#: ``expiry`` is 0 for GTC; ``post_only`` is kept so an amended price is checked again.
ORDER_FIELDS = ("order_id", "owner", "side", "price", "qty", "expiry", "post_only")
ORDER_DTYPE = _int64_record(ORDER_FIELDS)

#: One aggregated price level, as ``Book.depth`` returns it.
LEVEL_DTYPE = _int64_record(("price", "qty", "count"))


def make_commands(rows: list[dict[str, int]]) -> np.ndarray:
    """Build a COMMAND_DTYPE array from dicts; missing fields are 0 (GTC, BUY, no expiry)."""
    out = np.zeros(len(rows), dtype=COMMAND_DTYPE)
    for i, row in enumerate(rows):
        for key, value in row.items():
            out[key][i] = int(value)
    return out
