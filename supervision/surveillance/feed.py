"""Reading what the engine did, in inbox order, each command once.

The engine marks inbox commands processed in the transaction that writes their trades, so
a processed command and its trades become visible together. Commands are numbered by a
sequence at entry but committed, and processed, out of that order: an entry transaction
may commit after a later one, and shards process independently. So a plain "last seq"
cursor would skip commands. The cursor (``SurveillanceCursor``) is instead:

- ``seq``: everything up to it has been read, except
- ``waiting``: commands up to ``seq`` that were still unprocessed when passed; each pass
  reads those processed since;
- ``gaps``: ranges of numbers up to ``seq`` with no row visible when passed — an entry still
  committing, or one rolled back (the sequence never goes back). A gap is dropped once
  every transaction of this database that was running when it was seen has ended (noted
  from ``pg_stat_activity``: backend and start) and ``GAP_GRACE_S`` have passed, so a
  command that commits late is still read; one that never commits is forgotten. (Not
  PostgreSQL's snapshot horizon: that spans every database of the server, and one long
  transaction anywhere would hold every gap.)

``seq`` advances only up to the last processed command a pass sees, so ``waiting`` holds
only what an engine shard still has to do; it stops advancing while ``waiting`` is at
``MAX_WAITING``. The cursor is written in the transaction of the alerts of what was read.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

from django.db import connection

from exchange.db import pg_array

GAP_GRACE_S = 5.0
MAX_WAITING = 100_000

# Times as epoch seconds (floats): windows compare numbers, not datetimes, thousands per pass.
COMMANDS_SQL = """
    SELECT i.seq, i.instrument_id, i.action, i.order_id, i.new_price_fen, i.new_qty,
           extract(epoch FROM i.created_at)::float8, o.organisation_id, o.side, o.type, o.tif,
           coalesce(o.entry_price_fen, o.price_fen), o.qty,
           o.status, o.reason, extract(epoch FROM o.created_at)::float8, extract(epoch FROM o.expires_at)::float8
    FROM exchange_inboxcommand i LEFT JOIN exchange_order o ON o.id = i.order_id
    WHERE i.seq = ANY(%s::bigint[]) AND i.processed_at IS NOT NULL
    ORDER BY i.seq
"""
TRADES_SQL = """
    SELECT id, instrument_id, inbox_seq, price_fen, qty, buy_order_id, sell_order_id, buyer_id, seller_id, aggressor,
           extract(epoch FROM created_at)::float8
    FROM exchange_trade WHERE inbox_seq = ANY(%s::bigint[])
    ORDER BY inbox_seq, match_index
"""


@dataclass(slots=True)
class Trade:
    id: int
    instrument_id: int
    seq: int
    price_fen: int
    qty: int
    buy_order_id: int
    sell_order_id: int
    buyer_id: int
    seller_id: int
    aggressor: str  # "buy", "sell" or "auction"
    at: float


@dataclass(slots=True)
class Command:
    """A processed inbox command with its order (NEW, CANCEL, AMEND) as it is now, and its trades.
    ``price_fen`` is the limit the order was entered with (the row's current price follows
    amendments, which come as commands of their own; ``qty`` never changes)."""

    seq: int
    instrument_id: int
    action: str
    order_id: int | None
    new_price_fen: int | None
    new_qty: int | None
    at: float  # entry of the command
    organisation_id: int | None = None
    side: str | None = None
    type: str | None = None
    tif: str | None = None
    price_fen: int | None = None
    qty: int | None = None
    status: str | None = None
    reason: str | None = None
    order_at: float | None = None
    expires_at: float | None = None
    trades: list[Trade] = field(default_factory=list)


@dataclass
class Cursor:
    seq: int = 0
    waiting: list[int] = field(default_factory=list)
    gaps: list[list] = field(default_factory=list)  # [first, last, [[pid, xact start]…], first seen (epoch s)]
    commands: int = 0
    trades: int = 0


def cursor_load(name: str = "inbox", *, lock: bool = False) -> Cursor:
    from supervision.models import SurveillanceCursor

    query = SurveillanceCursor.objects.filter(name=name)
    row = (query.select_for_update() if lock else query).first()
    if row is None:
        return Cursor()
    return Cursor(row.seq, list(row.waiting), [list(g) for g in row.gaps], row.commands, row.trades)


def cursor_save(cursor: Cursor, name: str = "inbox") -> None:
    from supervision.models import SurveillanceCursor

    SurveillanceCursor.objects.update_or_create(name=name, defaults=dict(
        seq=cursor.seq, waiting=cursor.waiting, gaps=cursor.gaps, commands=cursor.commands, trades=cursor.trades))


def _running() -> list[list]:
    """[backend pid, transaction start] of this database's other open transactions, now."""
    with connection.cursor() as c:
        # The activity view is read once per transaction and kept; a pass needs it as it is now.
        c.execute("SELECT pg_stat_clear_snapshot()")
        c.execute("SELECT pid, extract(epoch FROM xact_start)::float8 FROM pg_stat_activity "
                  "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL")
        return [list(row) for row in c.fetchall()]


def read(cursor: Cursor, *, limit: int, now: float | None = None) -> tuple[list[Command], Cursor]:
    """The next processed commands (at most about ``limit`` new ones, plus those that were
    waiting) with their trades, in seq order, and the cursor after them."""
    now = time.time() if now is None else now
    # Before reading what was outstanding: a transaction not running now has ended, so if it
    # committed a number of a gap, the read below sees it.
    running = {(pid, start) for pid, start in _running()} if cursor.gaps or cursor.waiting else set()
    take: list[int] = []
    waiting: list[int] = []
    gaps: list[list] = []
    if cursor.waiting or cursor.gaps:
        with connection.cursor() as c:
            c.execute(
                "SELECT seq, processed_at IS NOT NULL FROM exchange_inboxcommand WHERE seq = ANY(%s::bigint[]) "
                "UNION ALL SELECT i.seq, i.processed_at IS NOT NULL FROM exchange_inboxcommand i "
                "JOIN unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi) ON i.seq BETWEEN r.lo AND r.hi",
                [pg_array(cursor.waiting), pg_array([g[0] for g in cursor.gaps]), pg_array([g[1] for g in cursor.gaps])])
            found = dict(c.fetchall())
        for seq in cursor.waiting:
            if seq not in found:  # gone meanwhile: forgotten as a rolled-back one would be
                gaps.append([seq, seq, [], now])
            else:
                (take if found[seq] else waiting).append(seq)
        for lo, hi, seen, since in cursor.gaps:
            inside = sorted(seq for seq in found if lo <= seq <= hi)
            for seq in inside:
                (take if found[seq] else waiting).append(seq)
            seen = [t for t in seen if tuple(t) in running]
            if not seen and now - since >= GAP_GRACE_S:
                continue  # every transaction that could have committed one of these has ended
            gaps.extend([a, b, seen, since] for a, b in _ranges_without(lo, hi, inside))
    high = cursor.seq
    if len(waiting) < MAX_WAITING:
        with connection.cursor() as c:
            c.execute("SELECT seq, processed_at IS NOT NULL FROM exchange_inboxcommand WHERE seq > %s "
                      "ORDER BY seq LIMIT %s", [cursor.seq, limit])
            rows = c.fetchall()
        last = max((i for i, (_, processed) in enumerate(rows) if processed), default=-1)
        after_read = None
        for seq, processed in rows[: last + 1]:
            if not processed and len(waiting) >= MAX_WAITING:
                break
            if seq > high + 1:
                # After the read: every transaction that could still commit a number it skipped is among these.
                if after_read is None:
                    after_read = _running()
                gaps.append([high + 1, seq - 1, after_read, now])
            (take if processed else waiting).append(seq)
            high = seq
    commands = _commands(sorted(take))
    after = Cursor(high, sorted(waiting), gaps, cursor.commands + len(commands),
                   cursor.trades + sum(len(c.trades) for c in commands))
    return commands, after


def _ranges_without(lo: int, hi: int, inside: list[int]) -> list[tuple[int, int]]:
    """[lo, hi] less the sorted numbers ``inside``, as ranges."""
    out, start = [], lo
    for seq in inside:
        if seq > start:
            out.append((start, seq - 1))
        start = seq + 1
    if start <= hi:
        out.append((start, hi))
    return out


def read_range(first: int, cursor: Cursor, *, limit: int = 50_000) -> list[Command]:
    """The processed commands from ``first`` up to ``cursor.seq`` that the cursor has read (not
    those still waiting, nor numbers of its gaps: a gap's command that has committed since is
    read by the next pass, once), for warming up the rules' windows after a restart; at most
    ``limit``, the latest."""
    gaps = sorted((g[0], g[1]) for g in cursor.gaps if g[1] >= first)
    starts = [lo for lo, _ in gaps]

    def in_gap(seq: int) -> bool:
        i = bisect.bisect_right(starts, seq) - 1
        return i >= 0 and seq <= gaps[i][1]

    with connection.cursor() as c:
        c.execute("SELECT seq FROM exchange_inboxcommand WHERE seq BETWEEN %s AND %s AND processed_at IS NOT NULL "
                  "ORDER BY seq DESC LIMIT %s", [first, cursor.seq, limit + len(cursor.waiting)])
        waiting = set(cursor.waiting)
        seqs = [seq for (seq,) in c.fetchall() if seq not in waiting and not in_gap(seq)][:limit]
    return _commands(sorted(seqs))


def first_seq_since(epoch: float, *, upto: int, reach: int = 500_000) -> int:
    """The first inbox seq entered at or after ``epoch`` among the ``reach`` before ``upto``."""
    with connection.cursor() as c:
        c.execute("SELECT min(seq) FROM (SELECT seq, created_at FROM exchange_inboxcommand WHERE seq <= %s "
                  "ORDER BY seq DESC LIMIT %s) t WHERE created_at >= to_timestamp(%s)", [upto, reach, epoch])
        found = c.fetchone()[0]
    return found if found is not None else upto + 1


def _commands(seqs: list[int]) -> list[Command]:
    if not seqs:
        return []
    array = pg_array(seqs)
    with connection.cursor() as c:
        c.execute(COMMANDS_SQL, [array])
        commands = [Command(*row) for row in c.fetchall()]
        c.execute(TRADES_SQL, [array])
        trades = c.fetchall()
    by_seq = {command.seq: command for command in commands}
    for row in trades:
        by_seq[row[2]].trades.append(Trade(*row))
    return commands
