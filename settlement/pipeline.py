"""A settlement pass on two connections: the next batch is taken and read while the one
before it is stored.

Batch ``b`` runs on the calling thread's connection when ``b`` is even, on a second
thread's (and so a second PostgreSQL backend's) when odd. Each batch is one transaction,
as in a serial pass. What one batch changes that another batch reads — debts, account
balances, the provenance head, event numbers — is read only once the batch before has
committed (``SettlementRunner._batch_write``); what no batch changes (the allocations due,
their metering, the resales' deliveries, fee shares, owners) is read before that, while
the batch before is still writing, and the batch marks its allocations settled then too:
what the second backend buys is over a third of a batch's PostgreSQL time (21 µs of 57 per
allocation), taken off the one backend that stores the batch before.

Batch ``b`` takes its rows (``FOR UPDATE SKIP LOCKED``: not those of batch ``b − 1``)
only after batch ``b − 1`` has taken its own. A batch that finds nothing waits for the
one before it to end and looks again (its resales may have made parents due); if it
still finds nothing, nothing is due while no batch holds any rows, and the pass ends, as
a serial pass ends. A batch that fails rolls back whole; the batch after it rolls back
too and the pass raises the error.

Both transactions hold rows the other does not wait for: batch ``b`` holds its
allocations while it waits (in Python) for batch ``b − 1``, which never reads them, and
due allocations belong to instruments that no longer trade, so the engine does not
either.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction

from exchange.runners import cyclic_gc_paused


class _Abandoned(Exception):
    """The batch before failed: roll this one back."""


@dataclass
class _Turn:
    taken: threading.Event = field(default_factory=threading.Event)  # its rows are locked (or it found none)
    ended: threading.Event = field(default_factory=threading.Event)  # committed or rolled back
    settled: int = 0
    failed: bool = False


class PipelinedPass:
    def __init__(self, runner, *, cutoff: datetime, steps, now: datetime):
        self.runner, self.cutoff, self.steps, self.now = runner, cutoff, steps, now
        self._turns: dict[int, _Turn] = {}
        self._lock = threading.Lock()
        self._stop = False
        self._error: BaseException | None = None

    def run(self) -> int:
        helper = threading.Thread(target=self._helper, name="settlement-pipeline", daemon=True)
        helper.start()
        try:
            self._batches(0)
        finally:
            helper.join()
        if self._error is not None:
            raise self._error
        return sum(turn.settled for turn in self._turns.values())

    def _turn(self, b: int) -> _Turn:
        with self._lock:
            return self._turns.setdefault(b, _Turn())

    def _helper(self) -> None:
        try:
            self._batches(1)
        finally:
            connection.close()  # this thread's own connection

    def _batches(self, first: int) -> None:
        b = first
        while True:
            if b > 0:
                self._turn(b - 1).taken.wait()
            turn = self._turn(b)
            if self._stop:
                turn.taken.set()
                turn.ended.set()
                return
            try:
                with cyclic_gc_paused(), transaction.atomic():
                    settled = self._batch(b, turn)
                turn.settled = settled  # committed
            except BaseException as exc:  # noqa: BLE001 - raised again by run()
                turn.failed = True
                with self._lock:
                    self._stop = True
                    if self._error is None and not isinstance(exc, _Abandoned):
                        self._error = exc
            finally:
                turn.taken.set()
                turn.ended.set()
            if turn.settled == 0:
                self._stop = True
            b += 2

    def _batch(self, b: int, turn: _Turn) -> int:
        runner = self.runner
        due = runner._batch_due(self.cutoff)
        if due:
            turn.taken.set()  # the next batch may take its rows now
            reads = runner._batch_read(due)
            # Its own rows, which no other batch reads: marked here, off the backend that stores
            # the batch before.
            with connection.cursor() as cursor:
                runner._mark_settled(cursor, reads.ids, self.now)
            self._wait_for(b - 1)
            return runner._batch_write(due, reads, steps=self.steps, now=self.now, marked=True)
        else:
            # Nothing now, while the batch before may still hold rows (and its resales keep
            # their parents back): once it has ended, with no other batch holding any, look again.
            if b > 0:
                self._wait_for(b - 1)
                due = runner._batch_due(self.cutoff)
            if not due:
                self._stop = True  # before the next batch may start: it need not open its connection
                turn.taken.set()
                return 0
            turn.taken.set()
            reads = runner._batch_read(due)
        return runner._batch_write(due, reads, steps=self.steps, now=self.now)

    def _wait_for(self, b: int) -> None:
        if b < 0:
            return
        before = self._turn(b)
        before.ended.wait()
        if before.failed:
            raise _Abandoned
