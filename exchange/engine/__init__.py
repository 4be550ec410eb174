"""The engine runner: the one writer for the instruments of its shard.

It reads inbox commands in sequence order, runs each instrument's batch through its
``matching.Book`` in one compiled call, and writes the outcome — order states, trades,
ledger journals, capacity positions, allocations, instrument state — in one transaction
that also marks the commands processed. Events are published only after that commit.
``drain`` (what ``run`` uses) overlaps two stages: a writer thread writes and commits one
batch while this thread reads and matches the next.

A crash anywhere loses nothing and doubles nothing: the books are rebuilt from open
orders, unprocessed commands are simply processed again, and a trade is unique per
(inbox seq, match index). If a batch's transaction fails, the in-memory books are thrown
away and rebuilt from the database before going on.

The package follows the batch through its stages: ``inbox`` (reading commands and loading
books), ``apply`` (matching and what it changes), ``write`` (every write), ``events``
(numbering and publishing) and ``runner`` (the pipeline, setting aside, the loop);
``batch`` holds what a batch changes, handed from ``apply`` to ``write``.
"""

from exchange.engine.runner import (
    QUARANTINE_AFTER,
    EngineRunner,
    connection_lost,
    shard_of,
    transient,
)
from exchange.engine.write import InboxConflict

__all__ = ["QUARANTINE_AFTER", "EngineRunner", "InboxConflict", "connection_lost", "shard_of", "transient"]
