"""The surveillance runner: one process beside the engine (``manage.py run_surveillance``).

Each pass, in one transaction: read the next processed inbox commands and their trades
(``feed``), apply them in order to the book copy and the rules, turn the rules' findings
into alerts, and move the cursor past what was read. A pass that fails rolls back whole,
and the runner rebuilds its memory (``load``) before trying again, so every event leads
to its alerts exactly once. One runner at a time holds the advisory lock; a second waits.

``load`` also warms the rules' windows up: the events of the last window that the stored
cursor had read are replayed with findings discarded (they were written when first read),
so a pattern that straddles a restart is still seen. Commands the cursor has not read (still
waiting, or numbers of a gap that have committed since) are left to the passes, which read
each of them once.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection, transaction

from exchange.runners import cyclic_gc_paused
from supervision.surveillance import feed
from supervision.surveillance.alerts import AlertWriter
from supervision.surveillance.context import Context
from supervision.surveillance.feed import Command
from supervision.surveillance.params import parameters_all, rules_ensure
from supervision.surveillance.rule_base import HOOKS
from supervision.surveillance.rules_market import Concentration, Hoarding
from supervision.surveillance.rules_prices import MarkingClose, PriceMove, VolatilityAuction
from supervision.surveillance.rules_trades import Spoofing, WashCircular, WashSameOwner, Withholding

log = logging.getLogger("supervision.surveillance")

ADVISORY_LOCK = (0x7376, 0)  # "sv" (the engine's class is "cx", settlement's "st")
WARM_UP_MAX_COMMANDS = 200_000


def window_s(params: dict[str, dict | None]) -> int:
    """The longest look-back of the event rules (what warming up replays)."""
    reach = [60]
    for code, names in (("spoofing", ("window_s",)), ("wash_circular", ("window_s",)), ("withholding", ("window_s",)),
                        ("price_move", ("window_s",)), ("marking_close", ())):
        p = params.get(code)
        if p:
            reach += [p[n] for n in names] + ([p["minutes"] * 60] if code == "marking_close" else [])
    return max(reach)


class SurveillanceRunner:
    def __init__(self, *, batch_size: int | None = None):
        self.batch_size = batch_size or settings.SURVEILLANCE_BATCH_SIZE
        if self.batch_size < 1:
            raise ValueError(f"the batch size must be at least 1 (got {self.batch_size})")
        self.ctx = Context()
        self.alerts = AlertWriter()
        self.rules = []
        self.hooks: dict[str, list] = {}
        self.loaded = False
        self.passes = 0

    # --- ownership -------------------------------------------------------------------

    def acquire(self, *, wait: bool = True) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_{'' if wait else 'try_'}advisory_lock(%s, %s)", list(ADVISORY_LOCK))
            return wait or cursor.fetchone()[0]

    def release(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", list(ADVISORY_LOCK))

    # --- memory ----------------------------------------------------------------------

    def _configure(self) -> None:
        self.ctx.params = params = parameters_all()
        self.hooks = {name: [(rule, params[rule.code]) for rule in self.rules
                             if params.get(rule.code) is not None and name in rule.hooks()] for name in HOOKS}

    def load(self) -> None:
        """(Re)build everything kept in memory from the database, then warm the windows up."""
        rules_ensure()
        self.ctx = Context()
        self.rules = [WashSameOwner(), WashCircular(), Spoofing(), Withholding(), MarkingClose(), PriceMove(),
                      VolatilityAuction(), Hoarding(), Concentration()]
        self._configure()
        resting = self.ctx.books.load()
        reach = window_s(self.ctx.params)
        self.alerts.load(reach_s=self._reach())
        cursor = feed.cursor_load()
        first = feed.first_seq_since(time.time() - reach, upto=cursor.seq)
        replayed = feed.read_range(first, cursor, limit=WARM_UP_MAX_COMMANDS)
        self.ctx.emit = False
        try:
            self.process(replayed)
        finally:
            self.ctx.emit = True
            self.ctx.findings.clear()
        self.loaded = True
        log.info("surveillance loaded: %d resting orders, %d commands of the last %d s replayed, cursor at %d",
                 resting, len(replayed), reach, cursor.seq)

    def _reach(self) -> float:
        """How long ago an open alert's last event may be for a finding to join it."""
        return max(window_s(self.ctx.params), max((p or {}).get("cooldown_s", 0) for p in self.ctx.params.values()))

    # --- one pass --------------------------------------------------------------------

    def step(self) -> tuple[int, int]:
        """One pass; return (commands, trades) read. On failure, memory is rebuilt and the error raised."""
        if not self.loaded:
            self.load()
        try:
            # No cyclic collection during a pass: the book copy holds every resting order, and a
            # pass makes thousands of short-lived objects (exchange.runners says more).
            with cyclic_gc_paused(), transaction.atomic():
                self._configure()
                cursor = feed.cursor_load(lock=True)
                commands, after = feed.read(cursor, limit=self.batch_size)
                self.process(commands)
                for rule, p in self.hooks["on_pass_end"]:
                    rule.on_pass_end(self.ctx, p, time.time())
                self.alerts.write(self.ctx.findings, self.ctx.params)
                if after != cursor:
                    feed.cursor_save(after)
            self.passes += 1
            if self.passes % 1000 == 0:
                self.alerts.forget_older(reach_s=self._reach())
        except Exception:
            self.loaded = False
            raise
        finally:
            self.ctx.findings = []
            self.ctx.traded = set()
        return len(commands), after.trades - cursor.trades

    def process(self, commands: list[Command]) -> None:
        """Apply ``commands`` in order to the book copy and the rules."""
        ctx, books, hooks = self.ctx, self.ctx.books, self.hooks
        ctx.prepare(commands)
        on_new, on_cancel, on_amend = hooks["on_new"], hooks["on_cancel"], hooks["on_amend"]
        for command in commands:
            action = command.action
            if action == "new":
                book = books.apply_new(command)
                order = book.orders.get(command.order_id)
                for rule, p in on_new:
                    rule.on_new(ctx, p, command, order)
                self._trades(command)
                books.settle_new(command)
            elif action == "cancel":
                order = books.apply_cancel(command)
                for rule, p in on_cancel:
                    rule.on_cancel(ctx, p, command, order)
            elif action == "amend":
                order, given_up = books.apply_amend(command)
                for rule, p in on_amend:
                    rule.on_amend(ctx, p, command, order, given_up)
                self._trades(command)
            elif action == "uncross":
                book = books.book(command.instrument_id)
                for rule, p in hooks["on_uncross"]:
                    rule.on_uncross(ctx, p, command, book)
                self._trades(command)
                if command.trades:
                    ctx.reference[command.instrument_id] = command.trades[0].price_fen
            elif action == "auction":
                for rule, p in hooks["on_auction"]:
                    rule.on_auction(ctx, p, command)
            elif action == "close":
                for rule, p in hooks["on_close"]:
                    rule.on_close(ctx, p, command)
                books.apply_close(command)
                for rule in self.rules:  # memory stays bounded however long the process runs
                    rule.forget(command.instrument_id)
                ctx.forget(command.instrument_id)
            elif action == "expire":
                books.apply_expire(command)

    def _trades(self, command: Command) -> None:
        ctx, books, on_trade = self.ctx, self.ctx.books, self.hooks["on_trade"]
        for trade in command.trades:
            books.apply_trade(trade)
            ctx.record_trade(trade)
            for rule, p in on_trade:
                rule.on_trade(ctx, p, trade)

    # --- loops -----------------------------------------------------------------------

    def drain(self, *, stop=lambda: False) -> tuple[int, int]:
        """Passes until nothing new is read (or ``stop()``); return (commands, trades)."""
        commands = trades = 0
        while not stop():
            n, t = self.step()
            commands, trades = commands + n, trades + t
            if not n or n < self.batch_size // 2:
                break
        return commands, trades

    def run(self, *, stop=lambda: False, interval: float | None = None) -> None:
        interval = settings.SURVEILLANCE_INTERVAL_MS / 1000 if interval is None else interval
        while not stop():
            started = time.monotonic()
            try:
                n, _ = self.step()
            except Exception:
                log.exception("a surveillance pass failed; it rolled back and is tried again")
                connection.close_if_unusable_or_obsolete()
                n = 0
                time.sleep(1)
            if not n or n < self.batch_size // 2:  # caught up: wait for more
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
