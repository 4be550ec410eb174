"""Replay: an instrument's stored inbox commands rerun through a fresh matching book, its
fills compared with the stored trades.

The commands go through the engine's own translation (``exchange.engine.apply.Apply``:
inbox rows to book commands, amendment cuts, auctions, the band following the reference
price), in the batches the engine processed them in (the commands one engine transaction
marked share its ``processed_at``), each batch stamped with that time (GTD expiry). Only
the database writes are left out. A new order comes in with its price as entered
(``Order.entry_price_fen``; ``price_fen`` follows amendments).

What the inbox does not hold is inferred:
- a halt or a resumption is written to the instrument row and the engine reads it before a
  batch; each also enqueues a call auction (``auction``), so a batch holding an odd number
  of them halts the book before it (or, if halted, resumes it), as the engine did — unless
  the halt was read one batch early (it committed while that batch was being read);
- the start: listed instruments open with an opening auction and no reference price; one
  whose first trade was continuous with no uncross before it started continuous, at its
  reference price if nothing uncrossed since (else its first trade's);
- the band: the engine reads it from the instrument row before each batch too; the
  regulator's recorded band changes (``instrument.band``) apply from the first batch
  processed after them;
- a command the engine set aside as failing (a new order rejected with ``engine_error``)
  is skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db import DatabaseError, connection, transaction

import matching
from exchange.engine.apply import Apply
from exchange.engine.inbox import EXPIRY_US_SQL, OrderRow, PendingCommand, band_ticks, micros
from exchange.models import InboxCommand, Instrument
from supervision.models import SupervisionAction
from matching.types import Action, Mode

State = Instrument.State

COMMANDS_SQL = """
    SELECT i.seq, i.action, i.order_id, i.new_price_fen, i.new_qty, i.extra_hold_fen, i.new_hold_per_lot_fen,
           i.processed_at, o.organisation_id, o.owner_id, o.side, o.type, o.tif, o.post_only,
           coalesce(o.entry_price_fen, o.price_fen), o.qty, {expiry}, o.protect_ticks, o.status, o.reason
    FROM exchange_inboxcommand i LEFT JOIN exchange_order o ON o.id = i.order_id
    WHERE i.instrument_id = %s AND i.processed_at IS NOT NULL
    ORDER BY i.seq
""".replace("{expiry}", EXPIRY_US_SQL.format(column="o.expires_at"))
TRADES_SQL = ("SELECT inbox_seq, match_index, price_fen, qty, buy_order_id, sell_order_id, aggressor "
              "FROM exchange_trade WHERE instrument_id = %s ORDER BY id")
BAND_ACTION = "instrument.band"  # recorded by supervision.instruments with details["band_bps"] from and to
TRADE_FIELDS = ("seq", "match_index", "price_fen", "qty", "buy_order", "sell_order", "aggressor")


@dataclass(frozen=True)
class Difference:
    """The first place replay and store disagree: ``expected`` (stored) or ``got`` (replayed)
    is None when the other has a trade there that it has not."""

    seq: int
    expected: dict | None
    got: dict | None

    @property
    def fields(self) -> list[str]:
        if self.expected is None or self.got is None:
            return []
        return [name for name in TRADE_FIELDS if self.expected[name] != self.got[name]]


@dataclass
class ReplayReport:
    instrument: str
    started_as: str = State.PRE_OPEN
    commands: int = 0  # replayed (up to the first difference)
    trades: int = 0  # compared and equal
    first_difference: Difference | None = None
    error: str = ""

    @property
    def exact(self) -> bool:
        return self.first_difference is None and not self.error


class _Replayer(Apply):
    """The engine's matching stage on one book, with nothing written."""

    def __init__(self, instrument: Instrument, *, state: str, reference_fen: int | None,
                 bands: list[tuple[datetime, int]]):
        self.instrument = copy.copy(instrument)
        self.instrument.state, self.instrument.reference_price_fen = state, reference_fen
        self.instrument.auction_ends_at = None
        # The band as the instrument was listed with, then each change the regulator made, in order.
        self.instrument.band_bps, self.bands = bands[0][1], bands[1:]
        self.instruments = {instrument.id: self.instrument}
        self.live: dict = {}
        self.books = {instrument.id: matching.Book.from_orders(
            np.zeros(0, dtype=matching.ORDER_DTYPE), ref_price=(reference_fen or 0) // instrument.tick_fen,
            band_ticks=band_ticks(self.instrument),
            mode=Mode.CONTINUOUS if state == State.CONTINUOUS else Mode.AUCTION)}
        self.batch_at: datetime | None = None
        self.halt_moves = False

    def book_for(self, instrument_id):
        return self.books[instrument_id]

    def _read_halts(self, instrument_ids) -> None:
        """What the engine reads from the instrument row before a batch (``Inbox._read_halts``):
        the band the regulator set before the batch, and a halt or resumption."""
        instrument, book = self.instrument, self.books[self.instrument.id]
        if instrument.state == State.CLOSED:
            return
        band_bps = instrument.band_bps
        while self.bands and self.bands[0][0] < self.batch_at:
            band_bps = self.bands.pop(0)[1]
        if band_bps != instrument.band_bps:
            instrument.band_bps = band_bps
            if instrument.reference_price_fen:
                book.process(matching.make_commands([{
                    "action": Action.SET_BAND, "price": instrument.reference_price_fen // instrument.tick_fen,
                    "qty": band_ticks(instrument)}]))
        if not self.halt_moves:
            return
        if instrument.state == State.HALTED:
            instrument.state = State.AUCTION  # resumed: a call auction, which an uncross ends
        else:
            instrument.state = State.HALTED
            if book.mode == Mode.CONTINUOUS:
                book.process(matching.make_commands([{"action": Action.SET_AUCTION}]))

    def _command_time_us(self) -> int:
        return micros(self.batch_at)

    def _account(self, organisation_id, kind) -> int:
        return 0  # no ledger: nothing is written

    def _fee_rates(self, commands) -> dict:
        return {"default": (0, 0), "tiers": {}}  # fees change no fill


def _bands(instrument: Instrument) -> list[tuple[datetime | None, int]]:
    """(None, the band it was listed with), then (when, band) for each change the regulator recorded."""
    changes = list(SupervisionAction.objects.filter(instrument=instrument, action=BAND_ACTION)
                   .order_by("created_at", "id").values_list("created_at", "details"))
    bands = [(at, details["band_bps"]["to"]) for at, details in changes if "band_bps" in details]
    first = changes[0][1]["band_bps"]["from"] if bands else instrument.band_bps
    return [(None, first), *bands]


def _start(instrument: Instrument) -> tuple[str, int | None]:
    with connection.cursor() as db:
        db.execute("SELECT min(seq) FROM exchange_inboxcommand WHERE instrument_id = %s AND action = 'uncross' "
                   "AND processed_at IS NOT NULL", [instrument.id])
        first_uncross = db.fetchone()[0]
        db.execute("SELECT inbox_seq, aggressor, price_fen FROM exchange_trade WHERE instrument_id = %s "
                   "ORDER BY id LIMIT 1", [instrument.id])
        first_trade = db.fetchone()
    if first_trade and first_trade[1] != "auction" and (first_uncross is None or first_trade[0] < first_uncross):
        return State.CONTINUOUS, instrument.reference_price_fen if first_uncross is None else first_trade[2]
    return State.PRE_OPEN, None


def _command(instrument_id: int, row) -> PendingCommand:
    seq, action, order_id, new_price, new_qty, extra, per_lot, _at, org, owner, side, type_, tif, post_only, \
        price, qty, expiry_us, protect, _status, _reason = row
    order = None
    if order_id is not None and org is not None:
        # Holds do not change fills: the replay keeps none.
        order = OrderRow(order_id, org, owner, side, type_, tif, post_only, price, qty, expiry_us, protect, 0, 0)
    return PendingCommand(seq, instrument_id, action, order_id, new_price, new_qty, extra or 0, per_lot, order)


def _set_aside(row) -> bool:
    """A new order the engine set aside as failing: it never reached the book."""
    return row[1] == InboxCommand.Action.NEW and row[18] == "rejected" and row[19] == "engine_error"


def _trade(values) -> dict:
    return dict(zip(TRADE_FIELDS, values))


class Replay:
    """``run()`` replays, yielding (commands done, commands in all) as it goes; ``report`` is
    complete when it ends. Commands and trades are read in one snapshot, so an engine
    running meanwhile changes neither side of the comparison."""

    def __init__(self, instrument: Instrument, *, chunk: int = 5000):
        self.instrument, self.chunk = instrument, chunk
        self.report = ReplayReport(instrument.code)

    def run(self) -> Iterator[tuple[int, int]]:
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost:
                with connection.cursor() as db:
                    db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield from self._run()

    def _run(self) -> Iterator[tuple[int, int]]:
        with connection.cursor() as db:
            db.execute("SELECT count(*) FROM exchange_inboxcommand WHERE instrument_id = %s "
                       "AND processed_at IS NOT NULL", [self.instrument.id])
            total = db.fetchone()[0]
        state, reference = _start(self.instrument)
        self.report.started_as = state
        replayer = _Replayer(self.instrument, state=state, reference_fen=reference,
                             bands=_bands(self.instrument))
        expected = _Expected(self.instrument.id)
        try:
            yield from self._replay(replayer, expected, total)
        except Exception as exc:  # a replay that cannot go on says so, rather than failing the page
            self.report.error = f"{type(exc).__name__}: {exc}"
        finally:
            expected.close()
        yield self.report.commands, total

    def _replay(self, replayer: _Replayer, expected: _Expected, total: int) -> Iterator[tuple[int, int]]:
        batch: list = []
        for rows in self._command_rows():
            for row in rows:
                if batch and row[7] != batch[-1][7]:  # another engine transaction: another batch
                    if not self._batch(replayer, batch, expected):
                        return
                    batch = []
                batch.append(row)
            yield self.report.commands + len(batch), total
        if batch and not self._batch(replayer, batch, expected):
            return
        if (left := expected.peek()) is not None:  # stored fills of no command replayed
            self.report.first_difference = Difference(left["seq"], left, None)

    def _command_rows(self) -> Iterator[list]:
        with connection.chunked_cursor() as db:
            db.execute(COMMANDS_SQL, [self.instrument.id])
            while rows := db.fetchmany(self.chunk):
                yield rows

    def _batch(self, replayer: _Replayer, rows: list, expected: _Expected) -> bool:
        """Replay one engine batch and compare its fills; False at the first difference."""
        commands = [_command(self.instrument.id, row) for row in rows if not _set_aside(row)]
        replayer.batch_at = rows[0][7]
        replayer.halt_moves = sum(1 for c in commands if c.action == InboxCommand.Action.AUCTION) % 2 == 1
        # BatchWrites.trades: (instrument, seq, match index, price, qty, buy order, sell order, buyer,
        # seller, aggressor, fees)
        got = [_trade((*t[1:7], t[9])) for t in replayer._run(commands).trades] if commands else []
        for trade in got:
            stored = expected.peek()
            if stored is None or _key(stored) > _key(trade):
                self.report.first_difference = Difference(trade["seq"], None, trade)
            elif _key(stored) < _key(trade):
                self.report.first_difference = Difference(stored["seq"], stored, None)
            elif stored != trade:
                self.report.first_difference = Difference(trade["seq"], stored, trade)
            else:
                expected.pop()
                self.report.trades += 1
                continue
            return False
        stored = expected.peek()
        if stored is not None and stored["seq"] <= rows[-1][0]:  # a stored fill of this batch not made again
            self.report.first_difference = Difference(stored["seq"], stored, None)
            return False
        self.report.commands += len(rows)
        return True


def _key(trade: dict) -> tuple[int, int]:
    return trade["seq"], trade["match_index"]


@dataclass
class _Expected:
    """The stored trades in order, read through a server-side cursor as the replay needs them."""

    instrument_id: int
    _rows: list = field(default_factory=list)
    _cursor: object = None

    def peek(self) -> dict | None:
        if not self._rows:
            if self._cursor is None:
                self._cursor = connection.chunked_cursor()
                self._cursor.execute(TRADES_SQL, [self.instrument_id])
            self._rows = [_trade(row) for row in reversed(self._cursor.fetchmany(5000))]
        return self._rows[-1] if self._rows else None

    def pop(self) -> dict:
        return self._rows.pop()

    def close(self) -> None:
        if self._cursor is not None:
            try:
                self._cursor.close()
            except DatabaseError:
                pass  # the transaction failed already (the report says why); its end closes the cursor


def replay_instrument(*, instrument: Instrument) -> ReplayReport:
    replay = Replay(instrument)
    for _ in replay.run():
        pass
    return replay.report


def difference_text(difference: Difference) -> str:
    """``first difference at command seq 123: price_fen: expected 2007, got 2000`` (English, for the command)."""
    where = f"first difference at command seq {difference.seq}"
    if difference.got is None:
        return f"{where}: the stored trade {_fill_text(difference.expected)} was not made again"
    if difference.expected is None:
        return f"{where}: the replay made a trade that is not stored: {_fill_text(difference.got)}"
    changes = "; ".join(f"{name}: expected {difference.expected[name]}, got {difference.got[name]}"
                        for name in difference.fields)
    return f"{where}, fill {difference.got['match_index']}: {changes}"


def _fill_text(trade: dict) -> str:
    return (f"#{trade['match_index']} ({trade['qty']} at {trade['price_fen']} fen, buy order {trade['buy_order']}, "
            f"sell order {trade['sell_order']})")
