"""A living demo market: makers quote around a drifting price, takers cross now and then;
after the trade, providers deliver and meter and buyers confirm access
(settlement/simulation.py), so allocations settle by themselves.

Now and then one of the demo organisations plays a wash trader or a spoofer
(exchange/simulation_abuse.py), so that surveillance raises alerts for the demo regulator.

Every order goes through the real order services as a demo organisation, so it passes
every rule: funds and capacity holds, tick and lot, instrument state, gate closure.
Refusals (no capacity left, funds used up) are part of the market and are skipped; any
other failure of one action or one round is logged and the market carries on, so a bug
met by one order does not end the demo.

The demo class's instruments (minutes-long windows, demo mode only) are quoted in every
round, the soonest first, so that a trade is made, delivered and settled within minutes
of ``make run``; of the other instruments a random few of the soonest are quoted.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field

from django.db import connection

from accounts.access import Actor, actor_from_user
from accounts.models import Membership, Organisation
from exchange import services
from exchange.errors import AppError
from exchange.models import Instrument, Order
from exchange.simulation_abuse import Abusers
from marketplace.periods import DEMO_CLASS_CODE
from settlement.simulation import DeliverySimulator

log = logging.getLogger("exchange.simulation")


@dataclass
class InstrumentWalk:
    code: str
    mid_fen: int
    resting: list[tuple[Actor, int]] = field(default_factory=list)


def _actors(kind: str) -> list[Actor]:
    memberships = Membership.objects.filter(
        organisation__kind=kind, organisation__kyc_status=Organisation.Kyc.VERIFIED,
        role__in=(Membership.Role.TRADER, Membership.Role.PROVIDER_ADMIN),
    ).select_related("user", "organisation")
    return [actor_from_user(m.user) for m in memberships]


# Seconds between the rounds after the trade (listing the demo class ahead, delivery, metering).
AFTER_TRADE_INTERVAL = 5.0
# Instruments of the demo class quoted every round (the soonest; two hubs list capacity in it).
DEMO_INSTRUMENTS = 4
# Most SCU·h in one simulated order: a demo-class window holds a few dozen SCU·h at most.
MAX_QTY, DEMO_MAX_QTY = 20, 5


class MarketSimulator:
    def __init__(self, *, instruments: int = 6, seed: int | None = None, max_resting: int = 12,
                 shortfall_every: int = 8, abuse_every: float = 180.0, abuse_first_after: float = 0.0):
        self.random = random.Random(seed)
        self.instrument_count = instruments
        self.max_resting = max_resting
        self.walks: dict[str, InstrumentWalk] = {}
        self.buyers = _actors(Organisation.Kind.BUYER)
        self.sellers = _actors(Organisation.Kind.PROVIDER)
        self.deliveries = DeliverySimulator(providers=self.sellers, holders=self.buyers,
                                            shortfall_every=shortfall_every)
        self.abusers = Abusers(self, every=abuse_every, first_after=abuse_first_after)

    def _instruments(self) -> tuple[list[Instrument], list[Instrument]]:
        """The soonest tradeable instruments that some provider has listed capacity in: of the
        demo class, and of the others."""
        from django.db.models import Exists, OuterRef

        from marketplace.models import ListingPeriod

        tradeable = (Instrument.State.PRE_OPEN, Instrument.State.CONTINUOUS, Instrument.State.AUCTION)
        listed = ListingPeriod.objects.filter(
            compute_class=OuterRef("compute_class"), hub=OuterRef("hub"), period_start=OuterRef("delivery_start"),
            scu_h__gt=0,
        )
        instruments = (Instrument.objects.filter(Exists(listed), state__in=tradeable).select_related("compute_class")
                       .order_by("delivery_start", "id"))
        demo = instruments.filter(compute_class__code=DEMO_CLASS_CODE)
        return (list(demo[:DEMO_INSTRUMENTS]),
                list(instruments.exclude(compute_class__code=DEMO_CLASS_CODE)[: self.instrument_count * 2]))

    def _walk(self, instrument: Instrument) -> InstrumentWalk:
        walk = self.walks.get(instrument.code)
        if walk is None:
            base = {"AI": 2200, "HPC": 3000, "GEN": 150}.get(instrument.compute_class.category.upper(), 1000)
            mid = instrument.last_price_fen or instrument.reference_price_fen or base + self.random.randint(-100, 100)
            walk = self.walks[instrument.code] = InstrumentWalk(code=instrument.code, mid_fen=mid)
        return walk

    def _place(self, actor: Actor, data: dict) -> Order | None:
        try:
            order, _ = services.order_place(actor=actor, data={**data, "client_order_id": uuid.uuid4().hex})
            return order
        except AppError as exc:
            log.debug("simulated order refused: %s", exc.code)
        except Exception:
            log.exception("simulated order failed: %s", data)
        return None

    def _cancel(self, actor: Actor, order_id: int) -> None:
        try:
            services.order_cancel(actor=actor, order_id=order_id)
        except AppError:
            pass  # already filled or cancelled
        except Exception:
            log.exception("simulated cancel of order %s failed", order_id)

    def tick(self) -> int:
        """One round over the instruments; return how many orders were placed."""
        placed = 0
        if not self.buyers or not self.sellers:
            return 0
        demo, others = self._instruments()
        self.random.shuffle(others)
        quoted = demo + others[: self.instrument_count]
        quoted += [i for i in self.abusers.instruments() if i.id not in {q.id for q in quoted}]
        for instrument in quoted:
            top = DEMO_MAX_QTY if instrument.compute_class.code == DEMO_CLASS_CODE else MAX_QTY
            walk = self._walk(instrument)
            walk.mid_fen = max(100, walk.mid_fen + self.random.randint(-8, 8))
            spread = self.random.randint(2, 15)
            bid = {"instrument": instrument.code, "side": "buy", "price": f"{(walk.mid_fen - spread) / 100:.2f}",
                   "qty": self.random.randint(1, top)}
            ask = {"instrument": instrument.code, "side": "sell", "price": f"{(walk.mid_fen + spread) / 100:.2f}",
                   "qty": self.random.randint(1, top)}
            for actor, data in ((self.random.choice(self.buyers), bid), (self.random.choice(self.sellers), ask)):
                if order := self._place(actor, data):
                    walk.resting.append((actor, order.id))
                    placed += 1
            if instrument.state == Instrument.State.CONTINUOUS and self.random.random() < 0.35:
                side = self.random.choice(("buy", "sell"))
                actor = self.random.choice(self.buyers if side == "buy" else self.sellers)
                price = walk.mid_fen + (25 if side == "buy" else -25)
                if self._place(actor, {"instrument": instrument.code, "side": side, "tif": "IOC",
                                       "price": f"{price / 100:.2f}", "qty": self.random.randint(1, min(10, top))}):
                    placed += 1
            while len(walk.resting) > self.max_resting:
                self._cancel(*walk.resting.pop(0))
        try:
            self.abusers.step()
        except Exception:
            log.exception("the simulated rule-breaker's step failed; carrying on")
        return placed

    def after_trade(self, *, now=None) -> dict:
        """The providers' and holders' round after the trade: keep the demo class listed
        ahead (demo mode), start delivery, confirm access, meter. Counts what was done."""
        from marketplace.demo import demo_listings_extend

        done = dict(self.deliveries.step(now=now))
        if listed := demo_listings_extend(now=now):
            done["listed"] = listed
        return done

    def run(self, *, interval: float = 0.5, stop=lambda: False) -> None:
        after_trade_due = 0.0
        while not stop():
            started = time.monotonic()
            rounds = [("", self.tick)]
            if started >= after_trade_due:
                after_trade_due = started + AFTER_TRADE_INTERVAL
                rounds.append(("delivery ", self.after_trade))
            for name, action in rounds:
                try:
                    action()
                except Exception:
                    log.exception("simulated %sround failed; carrying on", name)
                    connection.close_if_unusable_or_obsolete()  # a connection the failure broke is replaced next round
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
