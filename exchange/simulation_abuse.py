"""The demo's rule-breakers: now and then one of the demo organisations plays a wash trader or
a spoofer, so that the demo regulator finds surveillance alerts after ``make run``.

- The wash trader: two organisations of one beneficial owner cross each other in an opening
  auction (where self-trade prevention does not apply) that uncrosses before gate closure:
  one sells a few SCU·h it has listed, the other buys them, both far through the expected
  price so they meet first.
- The spoofer: a provider with no one else in its owner group puts a large bid well behind
  the best bid, sells a little into the best bid, and pulls its bid a round later; three
  times. Its instrument is quoted by the simulator's makers meanwhile, so there is a touch.

Everything goes through the order services, as the rest of the simulator does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from accounts.access import Actor
from exchange.models import Instrument, Order

log = logging.getLogger("exchange.simulation")

SPOOF_QTY = 60  # "large" for surveillance's default (50 SCU·h); the demo's own orders are 20 at most
SPOOF_CYCLES = 3
WASH_QTY = 2


@dataclass
class SpoofRun:
    actor: Actor
    instrument: Instrument
    cycles: int = SPOOF_CYCLES
    bid: Order | None = None
    waited: int = 0


def _listed(actor: Actor):
    from marketplace.models import ListingPeriod

    return Exists(ListingPeriod.objects.filter(
        provider=actor.organisation, compute_class=OuterRef("compute_class"), hub=OuterRef("hub"),
        period_start=OuterRef("delivery_start"), scu_h__gt=0))


class Abusers:
    def __init__(self, simulator, *, every: float, first_after: float):
        """Each plays every ``every`` seconds (0: never): the wash trader from ``first_after``
        seconds in (it waits for an opening auction, as there are at start), the spoofer half
        a minute later."""
        self.sim = simulator
        self.every = every
        now = time.monotonic()
        self.wash_due, self.spoof_due = now + first_after, now + first_after + 30
        self.spoof: SpoofRun | None = None
        self.spoofs = 0  # spoofing runs completed
        self.washed: tuple[Order, Order] | None = None  # the last wash trader's two orders

    def instruments(self) -> list[Instrument]:
        """Instruments the makers should quote this round (the spoofer's, which needs a touch)."""
        return [self.spoof.instrument] if self.spoof else []

    def step(self) -> None:
        if self.every <= 0:
            return
        now = time.monotonic()
        if self.spoof is not None:
            self._spoof_step()
        elif now >= self.spoof_due and self._spoof_start():
            self.spoof_due = now + self.every
        if now >= self.wash_due and self._wash():
            self.wash_due = now + self.every

    # --- the wash trader -----------------------------------------------------------------

    def _pair(self) -> tuple[Actor, Actor] | None:
        """A provider and another organisation of the same beneficial owner."""
        actors = self.sim.sellers + self.sim.buyers
        for seller in self.sim.sellers:
            owner = seller.organisation.beneficial_owner_id
            for other in actors:
                if other.organisation.id != seller.organisation.id and other.organisation.beneficial_owner_id == owner:
                    return seller, other
        return None

    def _wash(self) -> bool:
        pair = self._pair()
        if pair is None:
            return False
        seller, buyer = pair
        # Only an auction that uncrosses before gate closure: after it, the engine closes the
        # instrument and the pair's orders would stand until then without trading.
        instrument = (Instrument.objects.filter(state=Instrument.State.PRE_OPEN,
                                                auction_ends_at__gt=timezone.now() + timedelta(seconds=3),
                                                auction_ends_at__lt=F("gate_closure_at"))
                      .filter(_listed(seller)).select_related("compute_class").order_by("auction_ends_at").first())
        if instrument is None:
            return False  # no opening auction with the seller's capacity just now: a later round
        mid = self.sim._walk(instrument).mid_fen
        code = instrument.code
        ask = self.sim._place(seller, {"instrument": code, "side": "sell", "price": f"{mid * 95 // 100 / 100:.2f}",
                                       "qty": WASH_QTY})
        bid = self.sim._place(buyer, {"instrument": code, "side": "buy", "price": f"{mid * 105 // 100 / 100:.2f}",
                                      "qty": WASH_QTY})
        if ask and bid:
            self.washed = (ask, bid)
            log.info("demo wash trade: %s sells to %s (one owner) in %s's opening auction", seller.organisation.name,
                     buyer.organisation.name, code)
        return True

    # --- the spoofer ---------------------------------------------------------------------

    def _spoofer(self) -> Actor | None:
        owners = [a.organisation.beneficial_owner_id for a in self.sim.sellers + self.sim.buyers]
        alone = [a for a in self.sim.sellers if owners.count(a.organisation.beneficial_owner_id) == 1]
        return alone[0] if alone else (self.sim.sellers[-1] if self.sim.sellers else None)

    def _spoof_start(self) -> bool:
        actor = self._spoofer()
        if actor is None:
            return False
        instrument = (Instrument.objects.filter(state=Instrument.State.CONTINUOUS,
                                                gate_closure_at__gt=timezone.now() + timedelta(minutes=2))
                      .filter(_listed(actor)).select_related("compute_class").order_by("delivery_start", "id").first())
        if instrument is None:
            return False
        self.spoof = SpoofRun(actor, instrument)
        return True

    def _spoof_step(self) -> None:
        run = self.spoof
        if run.bid is not None:
            self.sim._cancel(run.actor, run.bid.id)
            run.bid, run.cycles = None, run.cycles - 1
            if run.cycles == 0:
                self.spoofs += 1
                log.info("demo spoofing: %s placed and pulled %d large bids in %s while selling into the bid",
                         run.actor.organisation.name, SPOOF_CYCLES, run.instrument.code)
                self.spoof = None
            return
        run.instrument.refresh_from_db(fields=["best_bid_fen", "state", "tick_fen"])
        best = run.instrument.best_bid_fen
        if best is None or run.instrument.state != Instrument.State.CONTINUOUS:
            run.waited += 1
            if run.waited > 20:  # no one bids there after ten seconds of quoting: give up this time
                self.spoof = None
            return
        tick = run.instrument.tick_fen
        behind = max(tick, (best * 2 // 100) // tick * tick)
        code = run.instrument.code
        run.bid = self.sim._place(run.actor, {"instrument": code, "side": "buy", "price": f"{(best - behind) / 100:.2f}",
                                             "qty": SPOOF_QTY})
        self.sim._place(run.actor, {"instrument": code, "side": "sell", "tif": "IOC", "price": f"{best / 100:.2f}",
                                    "qty": 2})
        if run.bid is None:
            self.spoof = None
