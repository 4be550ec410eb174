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

Modules: ``layout`` (codes and the arena layout), ``store`` (id map, GTD heap, event rows,
ladder), ``match`` (orders, commands and the batch loop), ``auction`` (the call auction), ``maintenance``
(building, growing and inspecting an arena).
"""

from .layout import (
    DROP_IDS,
    EVENT_SLACK,
    L_QTY,
    N_CMD_COLS,
    N_EVENT_COLS,
    N_LEVEL_COLS,
    NEED_EVENTS,
    NEED_LADDER,
    NEED_ORDERS,
    OK,
    S_BAND,
    S_BASE,
    S_BEST_ASK,
    S_BEST_BID,
    S_CAP,
    S_DROP_FROM,
    S_LAST_TS,
    S_LVL,
    S_MAX_SPAN,
    S_MODE,
    S_N_ASK,
    S_N_BID,
    S_NEED_HI,
    S_NEED_LO,
    S_REF,
    S_SPAN,
    S_STP,
)
from .maintenance import (
    BAD_COUNT,
    BAD_CROSSED,
    BAD_CURSOR,
    BAD_EXPIRED,
    BAD_FIFO,
    BAD_FREE,
    BAD_HEAP,
    BAD_LEVEL_TOTAL,
    BAD_MAP,
    BAD_ORDER,
    depth,
    load_orders,
    new_arena,
    new_book,
    relayout,
    resting_orders,
    validate,
)
from .auction import auction_price, drop_filled_ids
from .match import process_batch

__all__ = [
    "BAD_COUNT",
    "BAD_CROSSED",
    "BAD_CURSOR",
    "BAD_EXPIRED",
    "BAD_FIFO",
    "BAD_FREE",
    "BAD_HEAP",
    "BAD_LEVEL_TOTAL",
    "BAD_MAP",
    "BAD_ORDER",
    "DROP_IDS",
    "EVENT_SLACK",
    "L_QTY",
    "N_CMD_COLS",
    "N_EVENT_COLS",
    "N_LEVEL_COLS",
    "NEED_EVENTS",
    "NEED_LADDER",
    "NEED_ORDERS",
    "OK",
    "S_BAND",
    "S_BASE",
    "S_BEST_ASK",
    "S_BEST_BID",
    "S_CAP",
    "S_DROP_FROM",
    "S_LAST_TS",
    "S_LVL",
    "S_MAX_SPAN",
    "S_MODE",
    "S_N_ASK",
    "S_N_BID",
    "S_NEED_HI",
    "S_NEED_LO",
    "S_REF",
    "S_SPAN",
    "S_STP",
    "auction_price",
    "depth",
    "drop_filled_ids",
    "load_orders",
    "new_arena",
    "new_book",
    "process_batch",
    "relayout",
    "resting_orders",
    "validate",
]
