"""Disputes in the console: the queue a regulator works through, and the decision.

``settlement.services.dispute_resolve`` does the settlement side (the lock, the checks, the
parties' events); the console adds the record of who decided and why, and tells every
open console, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, F, IntegerField, Prefetch, Value, When

from accounts.access import Actor
from settlement.models import Dispute, MeterReport
from settlement.selectors import allocation_window, scu_h_of
from settlement.services import deliverable_device_hours, dispute_resolve
from supervision.events import console_publish
from supervision.services import action_record

# Never the delivery's credentials: the console does not join the delivery at all.
RELATED = ("allocation__trade__instrument", "allocation__trade__seller", "allocation__holder",
           "allocation__listing_period__provider", "allocation__listing_period__listing__asset",
           "allocation__listing_period__listing__device_type", "report", "opened_by", "resolved_by")


def dispute_queue(*, state: str | None = None):
    """Disputes with their allocation, parties and metering reports: open ones first, oldest
    first (a queue), then decided ones, newest first."""
    queryset = (Dispute.objects.select_related(*RELATED)
                .prefetch_related(Prefetch("allocation__meter_reports",
                                           queryset=MeterReport.objects.select_related("reported_by").order_by("id")))
                .annotate(queue=Case(When(state=Dispute.State.OPEN, then=Value(0)), default=Value(1),
                                     output_field=IntegerField()),
                          place=Case(When(state=Dispute.State.OPEN, then=F("id")), default=-F("id"))))
    if state:
        queryset = queryset.filter(state=state)
    return queryset.order_by("queue", "place")


@dataclass
class DisputeFacts:
    """What a regulator weighs, worked out from the loaded rows (no further queries)."""

    dispute: Dispute
    reports: list[MeterReport]
    metered_device_hours: Decimal
    metered_scu_h: int
    deliverable_scu_h: int
    deliverable_device_hours: Decimal
    window: object

    @property
    def allocation(self):
        return self.dispute.allocation

    @property
    def provider(self):
        return self.dispute.allocation.listing_period.provider


def dispute_facts(dispute: Dispute) -> DisputeFacts:
    allocation = dispute.allocation
    reports = list(allocation.meter_reports.all())
    metered = sum((r.device_hours for r in reports), Decimal(0))
    deliverable, most = deliverable_device_hours(allocation)
    return DisputeFacts(dispute=dispute, reports=reports, metered_device_hours=metered,
                        metered_scu_h=scu_h_of(metered, allocation.listing_period.listing.factor),
                        deliverable_scu_h=deliverable, deliverable_device_hours=most,
                        window=allocation_window(allocation))


@transaction.atomic
def dispute_decide(*, actor: Actor, dispute_id: int, outcome: str, note: str, delivered_device_hours=None) -> Dispute:
    """Uphold the metering or adjust what counts as delivered; recorded, and on every console."""
    dispute = dispute_resolve(actor=actor, dispute_id=dispute_id, outcome=outcome, note=note,
                              delivered_device_hours=delivered_device_hours)
    allocation = dispute.allocation
    delivered = None if dispute.delivered_device_hours is None else str(dispute.delivered_device_hours)
    record = action_record(actor=actor, action="dispute.resolve", reason=dispute.resolution_note,
                           organisation=allocation.holder, details={
                               "dispute_id": dispute.pk, "allocation_id": allocation.pk, "outcome": dispute.state,
                               "delivered_device_hours": delivered})
    console_publish({"type": "dispute.resolved", "dispute_id": dispute.pk, "allocation_id": allocation.pk,
                     "outcome": dispute.state, "delivered_device_hours": delivered, "note": dispute.resolution_note,
                     "action_id": record.pk, "by": actor.user.email, "at": record.created_at.isoformat()})
    return dispute
