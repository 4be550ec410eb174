"""The demo after the trade: providers deliver and meter, holders confirm access.

Run by the market simulator (exchange/simulation.py) beside its orders. Every action goes
through settlement.services as a member of a demo organisation, so it meets every rule
the API enforces (who may act, the window, the allocation's size); the settlement runner
then settles what was metered, as it would for anyone. For each allocation of a simulated
provider, held by a simulated buyer:

- once its window has started, the provider starts delivery with an endpoint and demo
  credentials; on a later step the holder confirms access;
- half the window's device-hours are metered once half the window has passed, the rest
  once it has ended (within the dispute window, when metering is still taken);
- one allocation in ``shortfall_every`` (by id, so every step agrees) falls short: 97 %
  or 90 % of it is delivered, at least one SCU·h less than sold (metering counts whole
  SCU·h), so the SLA schedule credits the holder.

A refused action (an AppError: the window closed while the simulator was down, access
changed) is logged and skipped; anything else is logged and the next allocation goes on.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, OuterRef, Q, Sum
from django.utils import timezone

from accounts.access import Actor
from exchange.errors import AppError
from exchange.models import Allocation
from settlement import services
from settlement.models import Delivery, MeterReport

log = logging.getLogger("settlement.simulation")

DEVICE_HOURS = Decimal("0.0001")
SHORTFALL_SHARES = (Decimal("0.97"), Decimal("0.90"))


class DeliverySimulator:
    def __init__(self, *, providers: list[Actor], holders: list[Actor], shortfall_every: int = 8,
                 batch_size: int = 200):
        # One member acts for each organisation (the first found), as a person would.
        self.providers = {}
        for actor in providers:
            self.providers.setdefault(actor.membership.organisation_id, actor)
        self.holders = {}
        for actor in holders:
            self.holders.setdefault(actor.membership.organisation_id, actor)
        self.shortfall_every = shortfall_every
        self.batch_size = batch_size

    def shortfall_share(self, allocation_id: int) -> Decimal | None:
        """The share of an allocation delivered, when it falls short; None when delivered whole."""
        if self.shortfall_every and allocation_id % self.shortfall_every == 0:
            return SHORTFALL_SHARES[allocation_id // self.shortfall_every % len(SHORTFALL_SHARES)]
        return None

    def delivered_device_hours(self, allocation: Allocation) -> Decimal:
        """What the provider delivers over the whole window, in device-hours that convert
        back to whole SCU·h exactly (metering rounds to SCU·h at the listing's factor)."""
        deliverable = allocation.scu_h - allocation.resold_scu_h
        share = self.shortfall_share(allocation.id)
        # Never down to nothing: an allocation with nothing to meter would wait in every
        # step's work until it settled (a single SCU·h cannot be 97 % delivered anyway).
        if share is not None and deliverable > 1:
            deliverable = min(deliverable - 1, int(deliverable * share))
        factor = allocation.listing_period.listing.factor
        return (Decimal(deliverable) / factor).quantize(DEVICE_HOURS, rounding=ROUND_HALF_UP)

    def _due(self, allocation: Allocation, now: datetime) -> Decimal:
        """Device-hours that should be metered by ``now``: half at mid-window, all at its end."""
        instrument = allocation.trade.instrument
        whole = self.delivered_device_hours(allocation)
        if now >= instrument.delivery_end:
            return whole
        if now >= instrument.delivery_start + (instrument.delivery_end - instrument.delivery_start) / 2:
            return (whole / 2).quantize(DEVICE_HOURS, rounding=ROUND_DOWN)
        return Decimal(0)

    def _work(self, now: datetime):
        """Unsettled allocations of simulated providers and holders with something to do now:
        delivery to start or confirm, half the window to meter, or the rest after its end
        (while the dispute window still takes metering), the most urgent first."""
        window = "trade__instrument__delivery_"
        halfway = ExpressionWrapper(F(f"{window}start") + (F(f"{window}end") - F(f"{window}start")) / 2,
                                    output_field=DateTimeField())
        reports = MeterReport.objects.filter(allocation=OuterRef("pk"))
        # The rest is metered after the window's end: until a report is made after it.
        due = (
            Q(delivery__isnull=True, **{f"{window}end__gt": now})
            | Q(delivery__state=Delivery.State.STARTED, delivery__answered_at__isnull=True)
            | Q(halfway__lte=now) & ~Exists(reports)
            | Q(**{f"{window}end__lte": now}) & ~Exists(reports.filter(created_at__gte=OuterRef(f"{window}end")))
        )
        return list(
            Allocation.objects.filter(
                settled_at__isnull=True, listing_period__provider_id__in=list(self.providers),
                holder_id__in=list(self.holders), **{f"{window}start__lte": now},
                **{f"{window}end__gte": now - timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS)},
            )
            .alias(halfway=halfway).filter(due)
            .select_related("trade__instrument", "listing_period__listing", "delivery")
            .annotate(metered=Sum("meter_reports__device_hours"))
            .order_by(f"{window}end", "id")[: self.batch_size]
        )

    def step(self, *, now: datetime | None = None) -> Counter:
        """One round over the allocations due for an action; counts what was done."""
        now = now or timezone.now()
        done: Counter = Counter()
        for allocation in self._work(now):
            try:
                self._act(allocation, now, done)
            except AppError as exc:
                done["refused"] += 1
                log.info("simulated settlement step on allocation %s refused: %s", allocation.id, exc.code)
            except Exception:
                done["failed"] += 1
                log.exception("simulated settlement step on allocation %s failed", allocation.id)
        return done

    def _act(self, allocation: Allocation, now: datetime, done: Counter) -> None:
        if allocation.scu_h <= allocation.resold_scu_h:
            return  # all of it resold: delivered under the resales
        provider = self.providers[allocation.listing_period.provider_id]
        delivery = getattr(allocation, "delivery", None)
        if delivery is None:
            if now < allocation.trade.instrument.delivery_end:
                services.delivery_start(
                    actor=provider, allocation_id=allocation.id,
                    endpoint=f"ssh://alloc-{allocation.id}.demo-compute.example:22",
                    credentials=f"user: demo-{allocation.id}\npassword: {uuid.uuid4().hex[:16]}")
                done["started"] += 1
            return  # nothing delivered, nothing to meter
        if delivery.state == Delivery.State.STARTED and delivery.answered_at is None:
            services.delivery_answer(actor=self.holders[allocation.holder_id], allocation_id=allocation.id,
                                     working=True)
            done["confirmed"] += 1
        more = self._due(allocation, now) - (allocation.metered or Decimal(0))
        if more > 0:
            services.metering_report(actor=provider, allocation_id=allocation.id, device_hours=str(more), now=now,
                                     note="demo metering")
            done["metered"] += 1
