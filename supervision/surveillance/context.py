"""What the rules share while a pass runs: parameters, the book copy, who owns whom, recent
trades, and where findings go."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection

from exchange.db import pg_array
from supervision.surveillance.book import Books
from supervision.surveillance.feed import Command, Trade

RECENT_TRADES = 5000  # per instrument, for the windows of marking the close, withholding, price moves
OWNER_TRADES = 100  # per owner and instrument, for spoofing's opposite trades and hoarding's evidence
MAX_IDS = 200  # order and trade ids kept in one alert's evidence


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def bps(new: int, old: int) -> int:
    """Change from ``old`` to ``new`` in basis points (rounded toward zero)."""
    return int((new - old) * 10000 / old) if old else 0


@dataclass
class Finding:
    """What a rule found; the runner turns it into a new alert or adds it to an open one."""

    rule: str
    key: str
    severity: str
    at: float
    figures: dict
    organisation_ids: list[int]
    instrument_id: int | None = None
    seq: int | None = None
    orders: list[int] = field(default_factory=list)
    trades: list[int] = field(default_factory=list)
    # Figures added up when further findings join the alert (the rest: the latest wins).
    sums: tuple[str, ...] = ()


@dataclass(slots=True)
class InstrumentInfo:
    code: str
    tick_fen: int
    reference_fen: int | None
    band_bps: int
    gate_at: float
    compute_class_id: int
    hub_id: int


@dataclass(slots=True)
class OwnTrade:
    at: float
    side: str  # the owner's side
    trade: Trade


class Context:
    INFO_TTL = 30.0  # seconds an instrument's row is trusted (the regulator may change its band)
    OWNERS_TTL = 5.0  # seconds the owner map is trusted (beneficial-owner groups change)

    def __init__(self):
        self.params: dict[str, dict | None] = {}
        self.books = Books()
        self.emit = True  # False while warming up after a restart: findings were written before
        self.findings: list[Finding] = []
        self._owners: dict[int, int] = {}
        self._owners_at = 0.0
        self._info: dict[int, tuple[float, InstrumentInfo]] = {}
        self.recent_trades: dict[int, deque[Trade]] = {}
        self.owner_trades: dict[tuple[int, int], deque[OwnTrade]] = {}
        self.last_price: dict[int, int] = {}
        self.reference: dict[int, int] = {}  # surveillance's own: the first seen, then each uncross
        self.traded: set[int] = set()  # instruments traded in this pass

    # --- findings ----------------------------------------------------------------------

    def found(self, finding: Finding) -> None:
        if self.emit:
            self.findings.append(finding)

    def on(self, code: str) -> dict | None:
        """The rule's parameters, or None when it is switched off."""
        return self.params.get(code)

    # --- facts -------------------------------------------------------------------------

    def prepare(self, commands: list[Command]) -> None:
        """Load the owners and instruments a batch of commands needs, in two queries."""
        now = time.monotonic()
        if now - self._owners_at > self.OWNERS_TTL:
            self._owners.clear()
            self._owners_at = now
        orgs = {c.organisation_id for c in commands if c.organisation_id}
        instruments, closing = set(), set()
        for command in commands:
            instruments.add(command.instrument_id)
            if command.action == "close":
                closing.add(command.instrument_id)  # its gate closure as it is now
            for trade in command.trades:
                orgs.add(trade.buyer_id)
                orgs.add(trade.seller_id)
        missing = [org for org in orgs if org not in self._owners]
        if missing:
            with connection.cursor() as c:
                c.execute("SELECT id, beneficial_owner_id FROM accounts_organisation WHERE id = ANY(%s::bigint[])",
                          [pg_array(missing)])
                self._owners.update(c.fetchall())
        stale = [i for i in instruments
                 if i in closing or i not in self._info or now - self._info[i][0] > self.INFO_TTL]
        if stale:
            with connection.cursor() as c:
                c.execute("SELECT id, code, tick_fen, reference_price_fen, band_bps, "
                          "extract(epoch FROM gate_closure_at)::float8, compute_class_id, hub_id "
                          "FROM exchange_instrument WHERE id = ANY(%s::bigint[])", [pg_array(stale)])
                for row in c.fetchall():
                    self._info[row[0]] = (now, InstrumentInfo(*row[1:]))
                    if row[3] and row[0] not in self.reference:
                        self.reference[row[0]] = row[3]

    def owner(self, organisation_id: int) -> int:
        return self._owners.get(organisation_id, -organisation_id)

    def instrument(self, instrument_id: int) -> InstrumentInfo:
        return self._info[instrument_id][1]

    def price_at(self, instrument_id: int, epoch: float) -> int | None:
        """The last price at or before ``epoch`` among the recent trades, else the earliest
        recent one after it, else the reference."""
        trades = self.recent_trades.get(instrument_id)
        before = None
        if trades:
            for trade in trades:
                if trade.at > epoch:
                    return before if before is not None else trade.price_fen
                before = trade.price_fen
            return before
        return self.reference.get(instrument_id)

    def forget(self, instrument_id: int) -> None:
        """The instrument closed: nothing more will trade in it."""
        for store in (self.recent_trades, self.last_price, self.reference, self._info):
            store.pop(instrument_id, None)
        for key in [k for k in self.owner_trades if k[1] == instrument_id]:
            del self.owner_trades[key]

    # --- what every trade updates -------------------------------------------------------

    def record_trade(self, trade: Trade) -> None:
        instrument_id = trade.instrument_id
        recent = self.recent_trades.get(instrument_id)
        if recent is None:
            recent = self.recent_trades[instrument_id] = deque(maxlen=RECENT_TRADES)
        recent.append(trade)
        self.last_price[instrument_id] = trade.price_fen
        self.reference.setdefault(instrument_id, trade.price_fen)
        self.traded.add(instrument_id)
        for org, side in ((trade.buyer_id, "buy"), (trade.seller_id, "sell")):
            key = (self.owner(org), instrument_id)
            own = self.owner_trades.get(key)
            if own is None:
                own = self.owner_trades[key] = deque(maxlen=OWNER_TRADES)
            own.append(OwnTrade(trade.at, side, trade))
