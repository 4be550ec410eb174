"""The runner: shard ownership, the one-batch ``step`` and the two-stage ``drain``, setting a
failing command aside, and the run loop."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections, transaction

import matching
from exchange import market_data
from exchange.db import conninfo
from exchange.engine.apply import Apply
from exchange.engine.batch import BatchWrites
from exchange.engine.events import Events
from exchange.engine.inbox import Inbox, LiveOrder, PendingCommand
from exchange.engine.write import Write
from exchange.models import InboxCommand, Instrument, Order
from exchange.runners import ShardLock, cyclic_gc_paused

log = logging.getLogger("exchange.engine")

# A batch that fails this many times in a row for a reason other than the database going
# away is searched for the one command that fails alone, and that command is set aside.
QUARANTINE_AFTER = 3
# The database unreachable or the connection lost: nothing a command did, so nothing is set
# aside; the runner stops and a restart takes over (see connection_lost).
CONNECTION_ERRORS = (OperationalError, InterfaceError)
ADVISORY_LOCK_CLASS = 0x6378  # "cx": first key of pg_advisory_lock(int, int)

FIRST_PENDING_SQL = ("SELECT seq FROM exchange_inboxcommand WHERE processed_at IS NULL{shard} "
                     "ORDER BY seq LIMIT 1")
# What setting a command aside needs: ids, integers and codes the exchange wrote itself.
SET_ASIDE_SQL = """
    SELECT i.seq, i.instrument_id, i.action, i.order_id, i.extra_hold_fen, o.organisation_id, o.side, o.status,
           o.remaining, o.held_fen, o.hold_per_lot_fen
    FROM exchange_inboxcommand i LEFT JOIN exchange_order o ON o.id = i.order_id
    WHERE i.seq = %s
"""


def transient(exc: BaseException) -> bool:
    """PostgreSQL refused the transaction for the moment (SQLSTATE class 40: a deadlock, a
    serialization failure): the batch is simply tried again, and it counts against no command."""
    return (getattr(exc.__cause__, "sqlstate", None) or "").startswith("40")


def connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, CONNECTION_ERRORS) and not transient(exc)


def shard_of(instrument_id: int, shards: int) -> int:
    """A stable hash of the instrument id (the id itself: ids never change)."""
    return instrument_id % shards


class EngineRunner(ShardLock, Inbox, Apply, Write, Events):
    """One shard's writer: the stages of the package put together (see ``exchange.engine``)."""

    ADVISORY_LOCK_CLASS = ADVISORY_LOCK_CLASS

    def __init__(self, *, shard: int = 0, shards: int = 1, batch_size: int | None = None):
        if not 0 <= shard < shards:
            raise ValueError("shard must be in [0, shards)")
        self.shard, self.shards = shard, shards
        self.batch_size = settings.ENGINE_BATCH_SIZE if batch_size is None else batch_size
        if self.batch_size < 1:
            raise ValueError(f"the batch size must be at least 1 (got {self.batch_size}; see ENGINE_BATCH_SIZE)")
        self.books: dict[int, matching.Book] = {}
        self.instruments: dict[int, Instrument] = {}
        self.live: dict[int, LiveOrder] = {}
        self._accounts: dict[tuple, int] = {}
        self._sequences: dict[str, str] = {}
        self._failures = 0  # batches failed in a row (run)
        self.depth = market_data.DepthTracker()
        self._writer_pool: ThreadPoolExecutor | None = None
        self._batch_started = 0.0  # when drain last read a batch (ENGINE_BATCH_INTERVAL_MS)

    # ownership

    def owns(self, instrument_id: int) -> bool:
        return shard_of(instrument_id, self.shards) == self.shard

    # processing

    def step(self) -> int:
        """Process one batch of pending commands; return how many."""
        with cyclic_gc_paused():
            return self._step()

    def _step(self) -> int:
        try:
            with transaction.atomic():
                commands = self._pending()
                if not commands:
                    return 0
                self._write_batch(commands, self._prepare(commands))
        except Exception:
            log.exception("batch failed; rebuilding books from the database")
            self.load()
            raise
        return len(commands)

    def drain(self, *, stop=lambda: False, interval: float = 0.0) -> int:
        """Process pending commands until none are left or ``stop()``; return how many.

        Two stages: this thread reads and matches batch N+1 while the writer thread writes
        and commits batch N, so Python and PostgreSQL work at the same time. Batch N+1 goes
        to the writer only after N has committed. If either stage fails, the batch in
        flight ends first (committed or rolled back as a whole), then the books are rebuilt
        from the database and the error is raised: nothing prepared on top of a failed batch
        is written. Batches start at least ``interval`` seconds apart.
        """
        total = 0
        inflight: tuple[list[PendingCommand], Future] | None = None
        with cyclic_gc_paused():
            try:
                while True:
                    commands: list[PendingCommand] = []
                    if not stop():
                        pause = self._batch_started + interval - time.monotonic()
                        if pause > 0:
                            time.sleep(pause)
                        self._batch_started = time.monotonic()
                        commands = self._pending(exclude=inflight[0] if inflight else ())
                    writes = self._prepare(commands) if commands else None
                    if inflight is not None:
                        inflight[1].result()
                        total += len(inflight[0])
                        inflight = None
                    if not commands:
                        return total
                    inflight = (commands, self._writer().submit(self._write_batch_alone, commands, writes))
            except BaseException as exc:
                if inflight is not None:
                    futures_wait([inflight[1]])
                if isinstance(exc, Exception):
                    log.exception("batch failed; rebuilding books from the database")
                    self.load()
                raise

    def _writer(self) -> ThreadPoolExecutor:
        if self._writer_pool is None:
            self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-writer")
        return self._writer_pool

    def close(self) -> None:
        """End the writer thread and its database connection (``drain`` starts them)."""
        pool, self._writer_pool = self._writer_pool, None
        if pool is not None:
            try:
                pool.submit(connections.close_all).result()
            finally:
                pool.shutdown()

    # setting a failing command aside

    def _drain_or_set_aside(self, stop, interval: float) -> bool:
        """One ``drain`` of ``run``: True if it failed (to be tried again at once). A batch that
        failed ``QUARANTINE_AFTER`` times in a row has its failing command set aside."""
        try:
            self.drain(stop=stop, interval=interval)
        except Exception as exc:
            if connection_lost(exc):
                raise
            if transient(exc):
                log.warning("batch refused for the moment (%s); trying again", exc)
                return True
            self._failures += 1
            if self._failures >= QUARANTINE_AFTER:
                self._failures = 0
                try:
                    self.quarantine_failing_command()
                except Exception as again:
                    if connection_lost(again):
                        raise
                    log.warning("setting a command aside was interrupted (%s); trying again", again)
            return True
        self._failures = 0
        return False

    def quarantine_failing_command(self) -> PendingCommand | None:
        """Find the first pending command that fails alone and set it aside so that the shard
        goes on (``QUARANTINE_AFTER``); return it (ids only), or None if every command went
        through this time. Batches halve after each failure and keep their size after a
        success (the commands before the failing one are processed on the way): about
        2 × log2(batch size) steps, not one per command."""
        batch_size = self.batch_size
        self.batch_size = max(1, batch_size // 2)
        try:
            while True:
                try:
                    if not self.step():
                        return None
                except Exception as exc:
                    if connection_lost(exc) or transient(exc):
                        raise  # nothing a command did
                    if self.batch_size > 1:
                        self.batch_size = max(1, self.batch_size // 2)
                        continue
                    seq = self._first_pending_seq()  # the failed step wrote nothing: its command is first
                    if seq is None:
                        raise
                    return self._quarantine(seq, exc)
        finally:
            self.batch_size = batch_size

    def _first_pending_seq(self) -> int | None:
        shard = " AND instrument_id %% %(shards)s = %(shard)s" if self.shards > 1 else ""
        with connection.cursor() as cursor:
            cursor.execute(FIRST_PENDING_SQL.format(shard=shard), {"shards": self.shards, "shard": self.shard})
            row = cursor.fetchone()
        return row[0] if row else None

    def _quarantine(self, seq: int, error: Exception) -> PendingCommand:
        """Mark the command ``seq`` processed without matching it: a new order is rejected with
        reason ``engine_error`` and its hold (or capacity) given back; an amendment's extra
        hold goes back.

        It reads only ids, integers and the engine's own codes, never what made the command
        fail (a price, an expiry, a time in force), so the content that stopped the batch
        cannot stop this too. If the rejection cannot be written either, the command is still
        marked processed and logged for an operator: one order left as it was is better than
        a shard that stops for every instrument."""
        with connection.cursor() as cursor:
            cursor.execute(SET_ASIDE_SQL, [seq])
            (seq, instrument_id, action, order_id, extra_hold, org, side, status, remaining, held,
             per_lot) = cursor.fetchone()
        command = PendingCommand(seq, instrument_id, action, order_id, None, None, extra_hold or 0, None)
        log.error("inbox command %s (%s, order %s) fails every time (%r); rejected and set aside",
                  seq, action, order_id, error)
        try:
            writes = BatchWrites()
            if action == InboxCommand.Action.NEW and org is not None and status == Order.Status.ACCEPTED:
                order = LiveOrder(order_id, org, instrument_id, side, per_lot, remaining, held)
                self._release(writes, order)
                self._update(writes, order_id, status=Order.Status.REJECTED, reason="engine_error")
            elif action == InboxCommand.Action.AMEND and extra_hold and org is not None:
                writes.releases.append((order_id, org, extra_hold))
            self._finalise(writes)
            with transaction.atomic():
                self._write_batch([command], writes)
        except Exception as exc:
            if connection_lost(exc) or transient(exc):
                raise
            log.critical("inbox command %s (%s, order %s) could not even be rejected (%r); marked processed "
                         "as it is, for an operator to repair", seq, action, order_id, exc)
            with transaction.atomic():
                self._mark_processed([command])
        return command

    # loop

    def run(self, *, stop=lambda: False, poll_seconds: float = 1.0) -> None:
        """Process until ``stop()``; wakes on NOTIFY cx_inbox, or every ``poll_seconds``."""
        import psycopg

        from exchange.instruments import housekeeping

        listener = psycopg.connect(conninfo(), autocommit=True)
        listener.execute("LISTEN cx_inbox")
        # Batches start at least this far apart: orders arriving meanwhile join the next one,
        # so under load each instrument publishes one market-data update per interval.
        interval = settings.ENGINE_BATCH_INTERVAL_MS / 1000
        try:
            while not stop():
                while self._drain_or_set_aside(stop, interval):
                    pass
                housekeeping(runner=self)
                # Notifications that arrived meanwhile are queued and end this wait at once.
                for _ in listener.notifies(timeout=poll_seconds, stop_after=1):
                    pass
        finally:
            listener.close()
            self.close()
