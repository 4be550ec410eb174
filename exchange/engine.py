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
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections, transaction
from django.utils import timezone

import matching
from exchange import market_data
from exchange.allocation import allocate
from exchange.db import conninfo, pg_array, pg_text_array
from exchange.events import organisation_group, publish_many
from exchange.models import (
    CapacityPosition,
    FeeTier,
    InboxCommand,
    Instrument,
    Journal,
    LedgerAccount,
    MemberTier,
    Order,
)
from exchange.money import cny, fee_fen
from matching.types import COMMAND_DTYPE, Action, EventType, Mode, Reason, Side, Tif

log = logging.getLogger("exchange.engine")

# A batch that fails this many times in a row for a reason other than the database going
# away is searched for the one command that fails alone, and that command is set aside.
QUARANTINE_AFTER = 3
# The database unreachable or the connection lost: nothing a command did, so nothing is set
# aside; the runner stops and a restart takes over (see connection_lost).
CONNECTION_ERRORS = (OperationalError, InterfaceError)
ADVISORY_LOCK_CLASS = 0x6378  # "cx": first key of pg_advisory_lock(int, int)
ACTIVE_STATES = (Instrument.State.PRE_OPEN, Instrument.State.CONTINUOUS, Instrument.State.AUCTION, Instrument.State.HALTED)
TIF_CODES = {"GTC": Tif.GTC, "GTD": Tif.GTD, "IOC": Tif.IOC, "FOK": Tif.FOK}
REASONS = {int(r): r.name.lower() for r in Reason}
# Looked up per trade: plain names, not enum attribute lookups.
HELD, ESCROW, AVAILABLE, PAYABLE, FEES = (LedgerAccount.Kind.HELD, LedgerAccount.Kind.ESCROW,
                                          LedgerAccount.Kind.AVAILABLE, LedgerAccount.Kind.PAYABLE,
                                          LedgerAccount.Kind.FEES)
FILLED, PARTIALLY_FILLED = Order.Status.FILLED, Order.Status.PARTIALLY_FILLED


class InboxConflict(RuntimeError):
    """A batch's commands were processed by another writer meanwhile (the shard lock lost)."""


def transient(exc: BaseException) -> bool:
    """PostgreSQL refused the transaction for the moment (SQLSTATE class 40: a deadlock, a
    serialization failure): the batch is simply tried again, and it counts against no command."""
    return (getattr(exc.__cause__, "sqlstate", None) or "").startswith("40")


def connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, CONNECTION_ERRORS) and not transient(exc)


def shard_of(instrument_id: int, shards: int) -> int:
    """A stable hash of the instrument id (the id itself: ids never change)."""
    return instrument_id % shards


def micros(dt) -> int:
    return int(dt.timestamp() * 1_000_000)


def band_ticks(instrument: Instrument) -> int:
    if not instrument.reference_price_fen:
        return 0
    return max(1, instrument.reference_price_fen * instrument.band_bps // 10000) // instrument.tick_fen


PENDING_SQL = """
    SELECT i.seq, i.instrument_id, i.action, i.order_id, i.new_price_fen, i.new_qty, i.extra_hold_fen,
           i.new_hold_per_lot_fen, o.organisation_id, o.owner_id, o.side, o.type, o.tif, o.post_only, o.price_fen,
           o.remaining, o.expires_at, o.protect_ticks, o.hold_per_lot_fen, o.held_fen
    FROM exchange_inboxcommand i LEFT JOIN exchange_order o ON o.id = i.order_id
    WHERE i.seq = ANY(ARRAY((SELECT seq FROM exchange_inboxcommand
                             WHERE processed_at IS NULL{shard} ORDER BY seq LIMIT %(reach)s)
                            EXCEPT SELECT unnest(%(exclude)s::bigint[])
                            ORDER BY 1 LIMIT %(limit)s))
    ORDER BY i.seq
"""


@dataclass(slots=True)
class OrderRow:
    """The order a NEW command carries, as the engine needs it."""

    id: int
    organisation_id: int
    owner_id: int
    side: str
    type: str
    tif: str
    post_only: bool
    price_fen: int | None
    remaining: int
    expires_at: object
    protect_ticks: int
    hold_per_lot_fen: int
    held_fen: int

    def live(self, instrument_id: int) -> LiveOrder:
        return LiveOrder(self.id, self.organisation_id, instrument_id, self.side, self.hold_per_lot_fen,
                         self.remaining, self.held_fen)


@dataclass(slots=True)
class PendingCommand:
    """An unprocessed inbox row (plain values: a batch holds thousands)."""

    seq: int
    instrument_id: int
    action: str
    order_id: int | None
    new_price_fen: int | None
    new_qty: int | None
    extra_hold_fen: int
    new_hold_per_lot_fen: int | None
    order: OrderRow | None = None


@dataclass(slots=True)
class LiveOrder:
    """What the runner keeps in memory about an order in its books."""

    id: int
    organisation_id: int
    instrument_id: int
    side: str
    hold_per_lot_fen: int
    remaining: int
    held_fen: int


class TradeRow(NamedTuple):
    """One trade of a batch as it is written and published (ids come from the sequence)."""

    id: int
    instrument_id: int
    inbox_seq: int
    match_index: int
    price_fen: int
    qty: int
    buy_order_id: int
    sell_order_id: int
    buyer_id: int
    seller_id: int
    aggressor: str
    buyer_fee_fen: int
    seller_fee_fen: int
    created_at: object


@dataclass
class BatchWrites:
    """Everything one batch changes, gathered before it is written in one transaction.

    Gathering (``EngineRunner._prepare``) reads and changes the books; writing
    (``EngineRunner._write``) only reads what is here, so a batch can be written while the
    next one is matched."""

    order_updates: dict[int, dict] = field(default_factory=dict)
    # TradeRow fields without id and created_at, in match order; ``trade_rows`` has them
    # complete (ids from the sequence) once the batch is prepared.
    trades: list[tuple] = field(default_factory=list)
    trade_rows: list[TradeRow] = field(default_factory=list)
    # Legs of the trade journals: (trade index, account id, fen); zero legs are left out.
    trade_legs: list[tuple[int, int, int]] = field(default_factory=list)
    releases: list[tuple[int, int, int]] = field(default_factory=list)  # (order id, org id, fen)
    release_accounts: list[tuple[int, int]] = field(default_factory=list)  # (held, available) per release
    positions: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # (org, instrument) → [held, sold, bought]
    instrument_changes: dict[int, dict] = field(default_factory=dict)
    first_price: dict[int, int] = field(default_factory=dict)  # instrument id → price of its first trade
    private_events: list[tuple[int, dict]] = field(default_factory=list)
    touched_instruments: set[int] = field(default_factory=set)
    market_data: list[tuple[int, str]] = field(default_factory=list)  # (instrument id, message)
    instrument_codes: dict[int, str] = field(default_factory=dict)
    instrument_rows: dict[int, dict] = field(default_factory=dict)  # instrument id → fields to save

    def position(self, organisation_id: int, instrument_id: int) -> list[int]:
        key = (organisation_id, instrument_id)
        position = self.positions.get(key)
        if position is None:
            position = self.positions[key] = [0, 0, 0]
        return position


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def cyclic_gc_paused():
    """No cyclic garbage collection while a batch runs (reference counting still frees).

    A batch makes some hundred thousand short-lived, acyclic objects; the collector they
    triggered walked the whole heap (every resting order) many times per batch, about a
    tenth of the engine's time. Counted, so runners on several threads of one process
    (the tests) turn it back on only when the last batch ends.
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


class EngineRunner:
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

    # ------------------------------------------------------------------ ownership

    def acquire_shard(self, *, wait: bool = True) -> bool:
        """Hold the shard's advisory lock for the life of this connection.

        A second runner for the same shard blocks here instead of writing.
        """
        with connection.cursor() as cursor:
            if wait:
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", [ADVISORY_LOCK_CLASS, self.shard])
                return True
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_LOCK_CLASS, self.shard])
            return cursor.fetchone()[0]

    def release_shard(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_LOCK_CLASS, self.shard])

    def owns(self, instrument_id: int) -> bool:
        return shard_of(instrument_id, self.shards) == self.shard

    # ------------------------------------------------------------------ books

    def load(self) -> None:
        """(Re)build every book of the shard from the open orders in PostgreSQL."""
        matching.warm_up()  # the compiled code loaded now, not in the first batch's transaction
        self.books.clear()
        self.instruments.clear()
        self.live.clear()
        # Every ledger account in one read; the few created later are looked up one by one.
        self._accounts = {(org, kind): account_id for account_id, org, kind
                          in LedgerAccount.objects.values_list("id", "organisation_id", "kind")}
        self.depth = market_data.DepthTracker()
        for instrument in Instrument.objects.filter(state__in=ACTIVE_STATES).order_by("id"):
            if self.owns(instrument.id):
                self._load_instrument(instrument)

    def _load_instrument(self, instrument: Instrument) -> None:
        rows = list(
            Order.objects.filter(
                instrument=instrument, status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)
            )
            .order_by("priority_seq", "id")
            .values_list("id", "owner_id", "side", "price_fen", "remaining", "expires_at", "post_only",
                         "organisation_id", "hold_per_lot_fen", "held_fen")
        )
        resting = np.zeros(len(rows), dtype=matching.types.ORDER_DTYPE)
        for i, (oid, owner, side, price, remaining, expires, post_only, org, per_lot, held) in enumerate(rows):
            resting[i] = (oid, owner, Side.BUY if side == "buy" else Side.SELL, price // instrument.tick_fen,
                          remaining, micros(expires) if expires else 0, int(post_only))
            self.live[oid] = LiveOrder(oid, org, instrument.id, side, per_lot, remaining, held)
        collecting = instrument.state in (Instrument.State.PRE_OPEN, Instrument.State.AUCTION)
        self.books[instrument.id] = matching.Book.from_orders(
            resting,
            ref_price=(instrument.reference_price_fen or 0) // instrument.tick_fen,
            band_ticks=band_ticks(instrument),
            mode=Mode.AUCTION if collecting else Mode.CONTINUOUS,
        )
        self.instruments[instrument.id] = instrument

    def book_for(self, instrument_id: int) -> matching.Book:
        if instrument_id not in self.books:
            self._load_instrument(Instrument.objects.get(pk=instrument_id))
        return self.books[instrument_id]

    # ------------------------------------------------------------------ processing

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

    def _write_batch_alone(self, commands: list[PendingCommand], writes: BatchWrites) -> None:
        """The writer thread's part: one batch in its own transaction."""
        with transaction.atomic():
            self._write_batch(commands, writes)

    def _write_batch(self, commands: list[PendingCommand], writes: BatchWrites) -> None:
        """Write a prepared batch and mark its commands processed (in the caller's transaction);
        publish its events once that commits."""
        self._write(writes)
        self._mark_processed(commands)
        # robust: a publishing failure (Redis away) is logged, never taken for the batch's
        # own — it is committed; subscribers see the gap in seq and re-read.
        transaction.on_commit(lambda: self._publish(writes), robust=True)

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
        goes on (``QUARANTINE_AFTER``); return it, or None if every command went through this
        time. Batches halve after each failure and keep their size after a success (the
        commands before the failing one are processed on the way): about 2 × log2(batch size)
        steps, not one per command."""
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
                    pending = self._pending()  # the failed step wrote nothing: its command is first
                    if not pending:
                        raise
                    self._quarantine(pending[0], exc)
                    return pending[0]
        finally:
            self.batch_size = batch_size

    def _quarantine(self, command: PendingCommand, error: Exception) -> None:
        """Mark ``command`` processed without matching it: a new order is rejected with reason
        ``engine_error`` and its hold given back; an amendment's extra hold goes back."""
        log.error("inbox command %s (%s, order %s) fails every time (%r); rejected and set aside",
                  command.seq, command.action, command.order_id, error)
        writes = BatchWrites()
        order = command.order
        if command.action == InboxCommand.Action.NEW and order is not None:
            self._release(writes, order.live(command.instrument_id))
            self._update(writes, order.id, status=Order.Status.REJECTED, reason="engine_error")
        elif command.action == InboxCommand.Action.AMEND and command.extra_hold_fen and order is not None:
            writes.releases.append((command.order_id, order.organisation_id, command.extra_hold_fen))
        self._finalise(writes)
        with transaction.atomic():
            self._write_batch([command], writes)

    @staticmethod
    def _mark_processed(commands: list[PendingCommand]) -> None:
        with connection.cursor() as cursor:
            # "processed_at IS NULL" lets it use the pending index (else: a scan of the whole inbox).
            cursor.execute("UPDATE exchange_inboxcommand SET processed_at = now() "
                           "WHERE processed_at IS NULL AND seq = ANY(%s::bigint[])",
                           [pg_array([c.seq for c in commands])])
            if cursor.rowcount != len(commands):
                # Only a second writer for the shard could have: roll back rather than apply twice.
                raise InboxConflict(f"{len(commands) - cursor.rowcount} of the batch's {len(commands)} inbox "
                                    "commands were processed meanwhile by another writer")

    def _pending(self, exclude: list[PendingCommand] | tuple = ()) -> list[PendingCommand]:
        """The next batch of unprocessed commands in sequence order, leaving out ``exclude`` (the
        batch being written)."""
        # = ANY(ARRAY(…)) keeps the planner on the partial index (IN (SELECT …) scanned the table);
        # EXCEPT hashes the excluded seqs (seq <> ALL(…) compared each row with every one of them).
        shard = " AND instrument_id %% %(shards)s = %(shard)s" if self.shards > 1 else ""
        params = {"shards": self.shards, "shard": self.shard, "reach": self.batch_size + len(exclude),
                  "exclude": pg_array([c.seq for c in exclude]), "limit": self.batch_size}
        with connection.cursor() as cursor:
            cursor.execute(PENDING_SQL.format(shard=shard), params)
            rows = cursor.fetchall()
        return [
            PendingCommand(*row[:8], order=OrderRow(row[3], *row[8:]) if row[3] is not None else None)
            for row in rows
        ]

    def _run(self, commands: list[PendingCommand]) -> BatchWrites:
        writes = BatchWrites()
        by_instrument: dict[int, list[PendingCommand]] = {}
        for command in commands:
            by_instrument.setdefault(command.instrument_id, []).append(command)
        fees = self._fee_rates(commands)
        for instrument_id, batch in by_instrument.items():
            book = self.book_for(instrument_id)
            instrument = self.instruments[instrument_id]
            array, sources = self._commands(instrument, book, batch, writes)
            # An amend's qty was a cut of the remaining order entry read; fills since then (earlier
            # in this batch, or in the one being written) may have left less, and matching takes
            # the qty as the new remaining, so it would grow the order beyond its hold. The batch is
            # matched up to each such amend, which then cuts only what is still left.
            cuts = np.flatnonzero((array["action"] == Action.AMEND) & (array["qty"] > 0)).tolist()
            for start, end in zip([0, *cuts], [*cuts, len(array)]):
                if start == end and len(array):
                    continue
                if start in cuts:
                    live = self.live.get(int(array["order_id"][start]))
                    if live is not None and array["qty"][start] >= live.remaining:
                        array["qty"][start] = 0  # no cut any more: the remaining stays
                events = (book.process(array[start:end]) if end > start
                          else np.zeros(0, dtype=matching.types.EVENT_DTYPE))
                self._apply(instrument, book, events, sources[start:end], fees, writes)
            writes.touched_instruments.add(instrument_id)
        return writes

    def _prepare(self, commands: list[PendingCommand]) -> BatchWrites:
        writes = self._run(commands)
        self._finalise(writes)
        return writes

    def _finalise(self, writes: BatchWrites) -> None:
        """Everything of the batch that needs the books or the runner's caches, so that writing
        it needs neither: trade ids and rows, release accounts, market-data messages and the
        instrument fields to save."""
        now = timezone.now()
        ids = self._next_ids("exchange_trade", len(writes.trades))
        writes.trade_rows = [TradeRow(trade_id, *trade, now) for trade_id, trade in zip(ids, writes.trades)]
        writes.release_accounts = [(self._account(org_id, HELD), self._account(org_id, AVAILABLE))
                                   for _, org_id, _ in writes.releases]
        by_instrument: dict[int, list[TradeRow]] = {}
        for trade in writes.trade_rows:
            by_instrument.setdefault(trade.instrument_id, []).append(trade)
        for instrument_id in sorted(writes.touched_instruments):
            instrument = self.instruments[instrument_id]
            message = market_data.build_update(instrument, self.books[instrument_id],
                                               by_instrument.get(instrument_id, []), self.depth)
            writes.market_data.append((instrument_id, message))
            writes.instrument_codes[instrument_id] = instrument.code
            writes.instrument_rows[instrument_id] = dict(
                md_seq=instrument.md_seq, last_price_fen=instrument.last_price_fen,
                best_bid_fen=instrument.best_bid_fen, best_ask_fen=instrument.best_ask_fen,
                **writes.instrument_changes.get(instrument_id, {}),
            )

    def _commands(self, instrument: Instrument, book, batch: list[PendingCommand], writes: BatchWrites):
        """Inbox rows → COMMAND_DTYPE rows; ``sources[i]`` is the inbox row of command i."""
        rows, sources = [], []
        now = micros(timezone.now())
        tick = instrument.tick_fen
        live = self.live
        updates = writes.order_updates
        NEW, CANCEL, AMEND = InboxCommand.Action.NEW, InboxCommand.Action.CANCEL, InboxCommand.Action.AMEND
        # Rows follow COMMAND_FIELDS: action, order_id, owner, side, price, qty, tif, post_only, expiry, ts, protect.
        for command in batch:
            action = command.action
            if action == NEW:
                order = command.order
                live[order.id] = order.live(instrument.id)
                updates.setdefault(order.id, {})["priority_seq"] = command.seq
                rows.append((
                    Action.MARKET if order.type == Order.Type.MARKET else Action.LIMIT, order.id, order.owner_id,
                    Side.BUY if order.side == "buy" else Side.SELL, (order.price_fen or 0) // tick, order.remaining,
                    TIF_CODES[order.tif], int(order.post_only), micros(order.expires_at) if order.expires_at else 0,
                    now, order.protect_ticks,
                ))
            elif action == CANCEL:
                rows.append((Action.CANCEL, command.order_id, 0, 0, 0, 0, 0, 0, 0, now, 0))
            elif action == AMEND:
                rows.append((Action.AMEND, command.order_id, 0, 0, (command.new_price_fen or 0) // tick,
                             command.new_qty or 0, 0, 0, 0, now, 0))
                if command.new_price_fen:
                    updates.setdefault(command.order_id, {})["priority_seq"] = command.seq
            elif action == InboxCommand.Action.UNCROSS:
                if book.mode == Mode.AUCTION:
                    rows.append((Action.UNCROSS, 0, 0, 0, 0, 0, 0, 0, 0, now, 0))
                writes.instrument_changes.setdefault(instrument.id, {}).update(
                    state=Instrument.State.CONTINUOUS, auction_ends_at=None)
            elif action == InboxCommand.Action.AUCTION:
                if book.mode == Mode.CONTINUOUS:
                    rows.append((Action.SET_AUCTION, 0, 0, 0, 0, 0, 0, 0, 0, now, 0))
            elif action == InboxCommand.Action.EXPIRE:
                rows.append((Action.EXPIRE, 0, 0, 0, 0, 0, 0, 0, 0, now, 0))
            elif action == InboxCommand.Action.CLOSE:
                for resting in book.orders()["order_id"].tolist():
                    rows.append((Action.CANCEL, resting, 0, 0, 0, 0, 0, 0, 0, now, 0))
                    sources.append(command)
                writes.instrument_changes.setdefault(instrument.id, {}).update(state=Instrument.State.CLOSED)
                continue
            else:  # pragma: no cover - the model's choices list every action
                raise ValueError(f"unknown inbox action {command.action}")
            sources.append(command)
        return np.array(rows, dtype=COMMAND_DTYPE) if rows else np.zeros(0, dtype=COMMAND_DTYPE), sources

    def _fee_rates(self, commands) -> dict:
        default = FeeTier.objects.filter(is_default=True).values_list("maker_bps", "taker_bps").first() or (0, 0)
        tiers = {
            org: (maker, taker)
            for org, maker, taker in MemberTier.objects.values_list("organisation_id", "tier__maker_bps", "tier__taker_bps")
        }
        return {"default": default, "tiers": tiers}

    def _apply(self, instrument, book, events, sources, fees, writes: BatchWrites) -> None:
        match_index: dict[int, int] = {}
        tick = instrument.tick_fen
        # Plain tuples (fields in EVENT_FIELDS order): reading numpy records one field at a
        # time cost more than everything the loop does with them.
        for (etype, cmd_index, order_id, _side, price, qty, remaining, reason,
             maker_id, taker_id, *_rest) in events.tolist():
            source = sources[cmd_index] if sources else None
            if etype == EventType.TRADE:
                seq = source.seq
                index = match_index[seq] = match_index.get(seq, -1) + 1
                self._trade(instrument, qty, maker_id, taker_id, reason == Reason.AUCTION, seq, index, fees, writes,
                            price_fen=price * tick)
            elif etype == EventType.ACCEPTED:
                update = writes.order_updates.get(order_id)
                if update is None:
                    update = writes.order_updates[order_id] = {}
                update["status"] = Order.Status.OPEN
            elif etype == EventType.REJECTED and source.action != InboxCommand.Action.NEW:
                # A refused cancel or amend leaves the order as it was; an amend's extra hold goes back.
                if source.action == InboxCommand.Action.AMEND and source.extra_hold_fen:
                    writes.releases.append((source.order_id, source.order.organisation_id, source.extra_hold_fen))
            elif etype in (EventType.REJECTED, EventType.CANCELLED, EventType.EXPIRED):
                status = {EventType.REJECTED: Order.Status.REJECTED, EventType.CANCELLED: Order.Status.CANCELLED,
                          EventType.EXPIRED: Order.Status.EXPIRED}[etype]
                self._finish(writes, order_id, status, REASONS.get(reason, ""))
            elif etype == EventType.AMENDED:
                self._amended(writes, source, remaining, price * tick)
            elif etype == EventType.VOLATILITY:
                writes.instrument_changes.setdefault(instrument.id, {}).update(
                    state=Instrument.State.AUCTION,
                    auction_ends_at=timezone.now() + timedelta(seconds=settings.VOLATILITY_AUCTION_SECONDS),
                )
            elif etype == EventType.AUCTION_UNCROSSED:
                changes = writes.instrument_changes.setdefault(instrument.id, {})
                changes.update(state=Instrument.State.CONTINUOUS, auction_ends_at=None)
                if price:
                    changes["reference_price_fen"] = price * tick
        # The band follows the new reference price after an auction; an instrument whose
        # opening auction did not cross takes its first trade's price as the reference.
        changes = writes.instrument_changes.get(instrument.id, {})
        if not instrument.reference_price_fen and "reference_price_fen" not in changes:
            if instrument.id in writes.first_price:
                changes = writes.instrument_changes.setdefault(instrument.id, {})
                changes["reference_price_fen"] = writes.first_price[instrument.id]
        if "reference_price_fen" in changes:
            instrument.reference_price_fen = changes["reference_price_fen"]
            ref_ticks = instrument.reference_price_fen // tick
            book.process(matching.types.make_commands([{"action": Action.SET_BAND, "price": ref_ticks,
                                                         "qty": band_ticks(instrument)}]))
        for key, value in changes.items():
            setattr(instrument, key, value)

    # ------------------------------------------------------------------ event effects

    def _update(self, writes: BatchWrites, order_id: int, **values) -> dict:
        update = writes.order_updates.setdefault(order_id, {})
        update.update(values)
        return update

    def _account(self, organisation_id: int | None, kind: str) -> int:
        key = (organisation_id, kind)
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = LedgerAccount.objects.get_or_create(
                organisation_id=organisation_id, kind=kind)[0].id
        return account

    def _trade(self, instrument, qty, maker_id, taker_id, auction, seq, index, fees, writes: BatchWrites, *,
               price_fen: int) -> None:
        taker = self.live[taker_id]
        maker = self.live[maker_id]
        buy, sell = (taker, maker) if taker.side == "buy" else (maker, taker)
        notional = price_fen * qty
        tiers, default = fees["tiers"], fees["default"]
        buyer_bps = tiers.get(buy.organisation_id, default)[1 if not auction and buy is taker else 0]
        seller_bps = tiers.get(sell.organisation_id, default)[1 if not auction and sell is taker else 0]
        buyer_fee = fee_fen(notional, buyer_bps)
        seller_fee = fee_fen(notional, seller_bps)
        released_hold = buy.hold_per_lot_fen * qty
        trade = len(writes.trades)
        writes.trades.append((
            instrument.id, seq, index, price_fen, qty, buy.id, sell.id, buy.organisation_id, sell.organisation_id,
            "auction" if auction else taker.side, buyer_fee, seller_fee,
        ))
        writes.first_price.setdefault(instrument.id, price_fen)
        account = self._account
        legs = writes.trade_legs
        buyer_org = buy.organisation_id
        for key, amount in (
            ((buyer_org, HELD), -released_hold),
            ((buyer_org, ESCROW), notional),
            ((buyer_org, AVAILABLE), released_hold - notional - buyer_fee),
            ((sell.organisation_id, PAYABLE), -seller_fee),
            ((None, FEES), buyer_fee + seller_fee),
        ):
            if amount:
                legs.append((trade, account(*key), amount))
        buy.held_fen -= released_hold
        updates = writes.order_updates
        for order in (buy, sell):
            order.remaining -= qty
            update = updates.get(order.id)
            if update is None:
                update = updates[order.id] = {}
            update["filled_delta"] = update.get("filled_delta", 0) + qty
            update["remaining"] = order.remaining
            update["held_fen"] = order.held_fen
            update["status"] = FILLED if order.remaining == 0 else PARTIALLY_FILLED
        seller_position = writes.position(sell.organisation_id, instrument.id)
        seller_position[0] -= qty
        seller_position[1] += qty
        writes.position(buy.organisation_id, instrument.id)[2] += qty
        if buy.remaining == 0:
            self._release(writes, buy)
        for order in (buy, sell):
            if order.remaining == 0:
                del self.live[order.id]
        price = cny(price_fen)
        writes.private_events += (
            (buy.organisation_id, {"type": "trade", "instrument": instrument.code, "side": "buy", "order_id": buy.id,
                                   "price": price, "qty": qty, "fee": cny(buyer_fee)}),
            (sell.organisation_id, {"type": "trade", "instrument": instrument.code, "side": "sell",
                                    "order_id": sell.id, "price": price, "qty": qty, "fee": cny(seller_fee)}),
        )

    def _release(self, writes: BatchWrites, order: LiveOrder) -> None:
        """Give back what an order no longer needs: a bid's remaining hold, an ask's capacity."""
        if order.side == "buy" and order.held_fen:
            writes.releases.append((order.id, order.organisation_id, order.held_fen))
            order.held_fen = 0
        elif order.side == "sell" and order.remaining:
            writes.position(order.organisation_id, order.instrument_id)[0] -= order.remaining
        self._update(writes, order.id, held_fen=0)

    def _finish(self, writes: BatchWrites, order_id: int, status: str, reason: str) -> None:
        order = self.live.pop(order_id)
        self._release(writes, order)
        self._update(writes, order_id, status=status, reason=reason)

    def _amended(self, writes: BatchWrites, source: PendingCommand, remaining: int, price_fen: int) -> None:
        order = self.live[source.order_id]
        if order.side == "buy":
            order.held_fen += source.extra_hold_fen
            if source.new_hold_per_lot_fen:
                order.hold_per_lot_fen = source.new_hold_per_lot_fen
            # Whatever the amended order can no longer need goes back to available.
            excess = order.held_fen - order.hold_per_lot_fen * remaining
            if excess > 0:
                writes.releases.append((order.id, order.organisation_id, excess))
                order.held_fen -= excess
        elif remaining < order.remaining:
            writes.position(order.organisation_id, order.instrument_id)[0] -= order.remaining - remaining
        order.remaining = remaining
        self._update(writes, order.id, remaining=remaining, held_fen=order.held_fen, price_fen=price_fen,
                     hold_per_lot_fen=order.hold_per_lot_fen)

    # ------------------------------------------------------------------ writing

    def _write(self, writes: BatchWrites) -> None:
        """Write a prepared batch (reads only ``writes``: see BatchWrites)."""
        now = timezone.now()
        trades = writes.trade_rows
        self._insert_trades(trades)
        # Journals: one per trade (in trade order), then one per release.
        journal_ids = self._next_ids("exchange_journal", len(trades) + len(writes.releases))
        deltas: dict[int, int] = {}
        if journal_ids:
            trade_journal = Journal.Kind.TRADE
            release_journal = Journal.Kind.RELEASE
            legs = [(journal_ids[trade], account, amount) for trade, account, amount in writes.trade_legs]
            for journal_id, (_, _, amount), (held, available) in zip(journal_ids[len(trades):], writes.releases,
                                                                      writes.release_accounts):
                legs.append((journal_id, held, -amount))
                legs.append((journal_id, available, amount))
            for _, account, amount in legs:
                deltas[account] = deltas.get(account, 0) + amount
            with connection.cursor() as cursor:
                with cursor.copy("COPY exchange_journal (id, kind, order_id, trade_id, memo, created_at) "
                                 "FROM STDIN") as copy:
                    for journal_id, trade in zip(journal_ids, trades):
                        copy.write_row((journal_id, trade_journal, None, trade.id, "", now))
                    for journal_id, (order_id, _, _) in zip(journal_ids[len(trades):], writes.releases):
                        copy.write_row((journal_id, release_journal, order_id, None, "", now))
                with cursor.copy("COPY exchange_ledgerleg (journal_id, account_id, amount_fen) FROM STDIN") as copy:
                    for leg in legs:
                        copy.write_row(leg)
        self._write_orders(writes)
        if trades:
            allocate(trades, writes.instrument_codes)
        for instrument_id, fields in sorted(writes.instrument_rows.items()):
            Instrument.objects.filter(pk=instrument_id).update(**fields)
        self._number_private_events(writes)
        # Last, just before the commit: the rows order entry locks too (accounts, then capacity
        # positions, each in id order, as cx_place_orders takes them), so order entry waits
        # only for the end of a batch and never in a cycle.
        self._write_balances(deltas)
        self._write_positions(writes)

    def _next_ids(self, table: str, count: int) -> list[int]:
        if not count:
            return []
        with connection.cursor() as cursor:
            sequence = self._sequences.get(table)
            if sequence is None:
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
                sequence = self._sequences[table] = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count])
            return [row[0] for row in cursor.fetchall()]

    @staticmethod
    def _insert_trades(rows: list[TradeRow]) -> None:
        """COPY the batch's trades (their ids came from the sequence when the batch was prepared,
        so the journals and allocations can refer to them)."""
        if not rows:
            return
        with connection.cursor() as cursor:
            with cursor.copy("COPY exchange_trade (id, instrument_id, inbox_seq, match_index, price_fen, qty, "
                             "buy_order_id, sell_order_id, buyer_id, seller_id, aggressor, buyer_fee_fen, "
                             "seller_fee_fen, created_at) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def _write_balances(self, deltas: dict[int, int]) -> None:
        if not deltas:
            return
        ids = sorted(deltas)
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM exchange_ledgeraccount WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids])
            cursor.execute(
                "UPDATE exchange_ledgeraccount a SET balance = a.balance + d.delta "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) WHERE a.id = d.id",
                [ids, [deltas[i] for i in ids]],
            )

    def _write_positions(self, writes: BatchWrites) -> None:
        if not writes.positions:
            return
        keys = sorted(writes.positions)
        CapacityPosition.objects.bulk_create(
            [CapacityPosition(organisation_id=o, instrument_id=i) for o, i in keys], ignore_conflicts=True
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM exchange_capacityposition c JOIN unnest(%s::bigint[], %s::bigint[]) AS k(o, i) "
                "ON c.organisation_id = k.o AND c.instrument_id = k.i ORDER BY c.id FOR UPDATE OF c",
                [[o for o, _ in keys], [i for _, i in keys]],
            )
            cursor.execute(
                "UPDATE exchange_capacityposition c SET held = c.held + d.h, sold = c.sold + d.s, bought = c.bought + d.b "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) AS d(o, i, h, s, b) "
                "WHERE c.organisation_id = d.o AND c.instrument_id = d.i",
                [[o for o, _ in keys], [i for _, i in keys]]
                + [[writes.positions[k][n] for k in keys] for n in range(3)],
            )

    # One statement for the whole batch (bulk_update's CASE per field per row was most of
    # the engine's time); it returns what the order events need.
    ORDER_UPDATE_SQL = """
        UPDATE exchange_order o SET
            status = COALESCE(d.status, o.status), reason = COALESCE(d.reason, o.reason),
            remaining = COALESCE(d.remaining, o.remaining), filled = o.filled + d.filled_delta,
            held_fen = COALESCE(d.held_fen, o.held_fen),
            hold_per_lot_fen = COALESCE(d.hold_per_lot_fen, o.hold_per_lot_fen),
            priority_seq = COALESCE(d.priority_seq, o.priority_seq), price_fen = COALESCE(d.price_fen, o.price_fen),
            updated_at = now()
        FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
                    %s::bigint[], %s::bigint[])
             AS d(id, status, reason, remaining, filled_delta, held_fen, hold_per_lot_fen, priority_seq, price_fen)
        -- The ids again, as an index condition: joined on d.id alone, the planner hashed the
        -- whole orders table for every batch.
        WHERE o.id = d.id AND o.id = ANY(%s::bigint[])
        RETURNING o.id, o.organisation_id, o.client_order_id, o.instrument_id, o.side, o.status, o.price_fen,
                  o.qty, o.filled, o.remaining, o.reason
    """
    ORDER_COLUMNS = ("status", "reason", "remaining", "filled_delta", "held_fen", "hold_per_lot_fen",
                     "priority_seq", "price_fen")

    def _write_orders(self, writes: BatchWrites) -> None:
        if not writes.order_updates:
            return
        ids = sorted(writes.order_updates)
        columns = [
            [writes.order_updates[oid].get(name, 0 if name == "filled_delta" else None) for oid in ids]
            for name in self.ORDER_COLUMNS
        ]
        with connection.cursor() as cursor:
            id_array = pg_array(ids)
            cursor.execute(self.ORDER_UPDATE_SQL, [id_array, pg_text_array(columns[0]), pg_text_array(columns[1]),
                                                   *map(pg_array, columns[2:]), id_array])
            rows = sorted(cursor.fetchall())
        for oid, org, client_id, instrument_id, side, status, price, qty, filled, remaining, reason in rows:
            writes.private_events.append((org, {
                "type": "order", "order_id": oid, "client_order_id": client_id, "instrument_id": instrument_id,
                "side": side, "status": status, "price": cny(price), "qty": qty, "filled": filled,
                "remaining": remaining, "reason": reason,
            }))

    def _number_private_events(self, writes: BatchWrites) -> None:
        """Give each organisation's events consecutive ``seq`` numbers, kept in the store, so a
        client can tell it missed one (and re-read its orders and fills)."""
        counts: dict[int, int] = {}
        for org_id, _ in writes.private_events:
            counts[org_id] = counts.get(org_id, 0) + 1
        if not counts:
            return
        orgs = sorted(counts)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO exchange_eventsequence AS e (organisation_id, seq) "
                "SELECT * FROM unnest(%s::bigint[], %s::bigint[]) "
                "ON CONFLICT (organisation_id) DO UPDATE SET seq = e.seq + EXCLUDED.seq "
                "RETURNING organisation_id, seq",
                [orgs, [counts[o] for o in orgs]],
            )
            next_seq = {org: last - counts[org] + 1 for org, last in cursor.fetchall()}
        for org_id, event in writes.private_events:
            event["seq"] = next_seq[org_id]
            next_seq[org_id] += 1

    def _publish(self, writes: BatchWrites) -> None:
        # Public market data first: one PUBLISH per instrument, read by every web process.
        for instrument_id, message in writes.market_data:
            market_data.publish_raw(instrument_id, message)
        by_org: dict[int, list[dict]] = {}
        for org_id, event in writes.private_events:
            by_org.setdefault(org_id, []).append(event)
        # One channel-layer message per organisation per batch, all in one event-loop hop.
        publish_many({organisation_group(org_id): events for org_id, events in by_org.items()})

    # ------------------------------------------------------------------ loop

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
