"""Matching engine of the compute-capacity exchange: one order book per instrument.

Plain numpy in, plain numpy out; no Django, no database, deterministic. Prices are
int64 ticks (1 tick = 0.01 CNY per SCU·h at the exchange), quantities int64 lots
(SCU·h), times int64 in the caller's clock.

Commands and events
-------------------
The caller builds a batch of commands, a 1-d array of ``COMMAND_DTYPE`` (fields and
units in ``matching.types``), and calls ``Book.process(batch)`` once: the whole batch runs
in one compiled call, so the Python boundary is paid per batch rather than per order.
It gets back an array of ``EVENT_DTYPE`` in the order things happened; ``cmd_index``
maps each event to its command row. Business outcomes are result codes, never
exceptions: a refused command yields one REJECTED event with a ``Reason`` and changes
nothing.

What one command produces, in order:

* every command first expires the GTD orders with ``expiry <= ts`` (EXPIRED, by expiry
  then order id), so an expired order can never trade; EXPIRE does only that;
* LIMIT / MARKET: REJECTED, or ACCEPTED then TRADEs (price-time priority, at the maker's
  price) interleaved with CANCELLED(STP) of makers, then possibly VOLATILITY, then
  CANCELLED for a remainder that may not rest (IOC_REMAINDER, NO_LIQUIDITY for market,
  STP, BAND); a GTC/GTD remainder rests silently. A market order's limit is the best
  opposite price on arrival ± ``protect_ticks``. Post-only orders that would take and FOK
  orders that cannot fill completely (within limit, band and STP) are REJECTED;
* CANCEL: CANCELLED(USER) or REJECTED(UNKNOWN_ORDER);
* AMEND (``price``/``qty`` = new limit / new remaining, 0 keeps): AMENDED with reason
  NONE when the order keeps its place (same price, qty not up), LOST_PRIORITY when it
  goes to the back; a new price is then matched like an incoming order;
* self-trade prevention (``Stp``) by ``owner``: expire the taker, the maker, or both;
* price band: in continuous mode a trade outside ``ref ± band`` does not happen: the
  book emits VOLATILITY (order id, the price it would have traded at), switches itself
  to AUCTION, and the order's remainder rests (GTC/GTD) or is CANCELLED(BAND); the rest of
  the batch runs in auction mode, and the caller reads ``Book.mode`` afterwards;
* auction: SET_AUCTION starts collecting (AUCTION_STARTED); orders rest without matching
  and the book may cross; IOC, FOK and market orders are REJECTED(AUCTION_IN_PROGRESS)
  and STP does not apply. ``Book.indicative()`` gives the price and volume an UNCROSS
  would clear now. UNCROSS trades everything executable at one price (most volume, then
  least surplus, then market pressure, then nearest the reference price) in price-time
  priority (TRADE with reason AUCTION; buyer in the taker columns), emits
  AUCTION_UNCROSSED, makes the clearing price the new reference and returns to
  continuous trading with the leftovers;
* SET_BAND sets the reference price and band (BAND_SET).

``Book`` is the compiled book; ``ReferenceBook`` is a slow, obviously correct one with
the same interface and identical events, kept for tests and audits. Both snapshot to and
restore from plain arrays, rebuild from a list of resting orders (``from_orders``) and
check their invariants with ``validate()``. ``python -m matching replay FILE.csv``
replays a CSV of commands and prints the trades.
"""

import os
from pathlib import Path

# numba's @njit(cache=True) fails at import without a writable cache directory.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".numba_cache"))

from .book import Book  # noqa: E402
from .reference import ReferenceBook  # noqa: E402
from .snapshot import BookInvariantError  # noqa: E402
from .types import (  # noqa: E402
    COMMAND_DTYPE,
    DEFAULT_MAX_SPAN_TICKS,
    EVENT_DTYPE,
    LEVEL_DTYPE,
    MAX_PRICE,
    MAX_QTY,
    ORDER_DTYPE,
    Action,
    EventType,
    Mode,
    Reason,
    Side,
    Stp,
    Tif,
    make_commands,
)

__all__ = [
    "COMMAND_DTYPE",
    "DEFAULT_MAX_SPAN_TICKS",
    "EVENT_DTYPE",
    "LEVEL_DTYPE",
    "MAX_PRICE",
    "MAX_QTY",
    "ORDER_DTYPE",
    "Action",
    "Book",
    "BookInvariantError",
    "EventType",
    "Mode",
    "Reason",
    "ReferenceBook",
    "Side",
    "Stp",
    "Tif",
    "make_commands",
    "warm_up",
]

_warm = False


def warm_up() -> None:
    """Load the compiled code (compiling it into the cache the first time, some seconds) with a
    throw-away book, so that a process's first real batch does not pay for it. Once per process."""
    global _warm
    if _warm:
        return
    book = Book(ref_price=1000, band_ticks=100)
    book.process(make_commands([
        {"action": Action.LIMIT, "order_id": 1, "owner": 1, "side": Side.SELL, "price": 1000, "qty": 2},
        {"action": Action.LIMIT, "order_id": 2, "owner": 2, "side": Side.BUY, "price": 1001, "qty": 1},
        {"action": Action.AMEND, "order_id": 1, "price": 1002, "qty": 1},
        {"action": Action.CANCEL, "order_id": 1},
    ]))
    book.depth(10)
    book.orders()
    _warm = True
