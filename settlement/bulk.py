"""The settlement runner's bulk writes: a writer thread on the batch's own connection, and
COPY in text built by the caller."""

from __future__ import annotations

import queue
import threading


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
