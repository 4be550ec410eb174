"""The settlement runner's bulk writes: a writer thread on the batch's own connection, COPY in
text built by the caller, and no cyclic garbage collection while a batch runs."""

from __future__ import annotations

import gc
import queue
import threading
from contextlib import contextmanager

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def cyclic_gc_paused():
    """No cyclic garbage collection while a batch runs (reference counting still frees).

    A batch makes a few hundred thousand short-lived, acyclic tuples and dicts; the
    collections they triggered walked the whole heap several times per batch. Counted, so
    runners on several threads of one process (the tests) turn it back on only when the
    last batch ends. (exchange.engine.runner has the engine's own: importing it here would
    load numba into every settlement process.)
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


class BulkWriter:
    """A batch's bulk writes on a thread of their own, in order, on the runner's connection.

    PostgreSQL spends longer storing a chunk of settlements (journals, legs, settlements,
    payouts, each row in every index) than Python spends working them out; with the writes
    here, the two overlap instead of taking turns. The connection and its transaction are the
    batch's: the runner's thread does not use it between the first ``submit`` and ``join``,
    which waits for every write and raises the first that failed (and the batch rolls back
    whole).
    """

    def __init__(self, django_connection):
        self._connection = django_connection
        self._raw = django_connection.connection
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="settlement-writer", daemon=True)
        self._thread.start()

    def submit(self, job) -> None:
        """``job(cursor)``, after the jobs submitted before it."""
        self._jobs.put(job)

    def _run(self) -> None:
        with self._raw.cursor() as cursor:
            while (job := self._jobs.get()) is not None:
                if self._error is None:
                    try:
                        job(cursor)
                    except BaseException as exc:  # noqa: BLE001 - raised again by join()
                        self._error = exc

    def join(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        if self._error is not None:
            with self._connection.wrap_database_errors:  # as Django's own cursors raise them
                raise self._error


def copy_text(cursor, sql: str, lines: list[str]) -> None:
    """COPY rows already in COPY's text format, sent in one piece (psycopg's ``write_row``
    adapts every value on its own: a third of the runner's Python time)."""
    with cursor.copy(sql) as copy:
        copy.write("".join(lines))
