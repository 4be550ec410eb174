"""Reads for settlement: which allocations an organisation may see, and in which role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Count, DecimalField, Exists, OuterRef, Prefetch, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.access import Actor
from exchange.errors import NotFound
from exchange.models import Allocation
from settlement import secrets
from settlement.models import Delivery, Dispute, MeterReport, Payout, Settlement, SlaCreditStep

ALLOCATION_RELATED = ("trade__instrument", "listing_period__listing__asset", "listing_period__listing__device_type")


@dataclass(frozen=True)
class Window:
    """An allocation's times: delivery, the last metering report, the last dispute."""

    start: datetime
    end: datetime

    @property
    def dispute_until(self) -> datetime:
        return self.end + timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS)


def allocation_window(allocation: Allocation) -> Window:
    instrument = allocation.trade.instrument
    return Window(start=instrument.delivery_start, end=instrument.delivery_end)


def allocation_provider_id(allocation: Allocation) -> int:
    """The asset's operator: it delivers every allocation of its capacity, resold or not."""
    return allocation.listing_period.provider_id


def allocations_visible(actor: Actor):
    """Allocations the actor's organisation holds, sold or delivers."""
    org_id = actor.membership.organisation_id
    return Allocation.objects.filter(
        Q(holder_id=org_id) | Q(trade__seller_id=org_id) | Q(listing_period__provider_id=org_id)
    ).select_related(*ALLOCATION_RELATED)


def allocation_get(*, actor: Actor, allocation_id: int, for_update: bool = False) -> Allocation:
    """The allocation if the actor's organisation holds, sold or delivers it; else 404 (another
    organisation's allocation is none of the caller's business)."""
    queryset = allocations_visible(actor)
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    allocation = queryset.filter(pk=allocation_id).first() if 0 < allocation_id < 2**63 else None
    if allocation is None:
        raise NotFound(f"No allocation {allocation_id} of yours.", code="allocation_not_found")
    return allocation


def scu_h_of(device_hours: Decimal, factor: Decimal) -> int:
    """Device-hours in whole SCU·h at the listing's attested factor (half up)."""
    return int((device_hours * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def metered_device_hours(allocation_id: int) -> Decimal:
    return MeterReport.objects.filter(allocation_id=allocation_id).aggregate(s=Sum("device_hours"))["s"] or Decimal(0)


def delivery_credentials(*, actor: Actor, allocation: Allocation) -> str | None:
    """The access credentials, for members of the holding organisation only; None for anyone else."""
    if allocation.holder_id != actor.membership.organisation_id:
        return None
    if Allocation.delivery.is_cached(allocation):
        # A page of allocations loads their deliveries with select_related: no query per row.
        delivery = getattr(allocation, "delivery", None)
    else:
        delivery = Delivery.objects.filter(pk=allocation.pk).first()
    if delivery is None:
        return None
    return secrets.decrypt(delivery.credentials_encrypted)


def allocation_roles(allocation: Allocation, organisation_id: int) -> list[str]:
    """What ``organisation_id`` is to the allocation: ``holder``, ``seller``, ``provider`` (any of them)."""
    roles = []
    if allocation.holder_id == organisation_id:
        roles.append("holder")
    if allocation.trade.seller_id == organisation_id:
        roles.append("seller")
    if allocation_provider_id(allocation) == organisation_id:
        roles.append("provider")
    return roles


def allocation_list(*, actor: Actor):
    """``allocations_visible`` with everything the API shows of each, newest first, in one
    query: delivery and settlement joined, the metered sum and the open dispute as
    subqueries. The encrypted credentials stay unread: only ``delivery_credentials`` reads them."""
    metered = (MeterReport.objects.filter(allocation_id=OuterRef("pk")).order_by().values("allocation_id")
               .annotate(total=Sum("device_hours")).values("total"))
    open_dispute = Dispute.objects.filter(allocation_id=OuterRef("pk"), state=Dispute.State.OPEN).values("pk")[:1]
    return (allocations_visible(actor).select_related("delivery", "settlement")
            .defer("delivery__credentials_encrypted")
            .annotate(metered_device_hours=Coalesce(Subquery(metered), Value(Decimal(0)),
                                                    output_field=DecimalField(max_digits=18, decimal_places=4)),
                      open_dispute_id=Subquery(open_dispute))
            .order_by("-id"))


def allocation_detail(*, actor: Actor, allocation_id: int) -> Allocation:
    """One allocation of ``allocation_list``; 404 as ``allocation_get``."""
    allocation = allocation_list(actor=actor).filter(pk=allocation_id).first() if 0 < allocation_id < 2**63 else None
    if allocation is None:
        raise NotFound(f"No allocation {allocation_id} of yours.", code="allocation_not_found")
    return allocation


def dispute_list(*, actor: Actor, oversees: bool, state: str | None = None):
    """Every dispute for a regulator (``oversees``); for anyone else those on allocations its
    organisation holds, sold or delivers. Newest first."""
    queryset = Dispute.objects.select_related("allocation__trade__instrument")
    if not oversees:
        org_id = actor.membership.organisation_id
        queryset = queryset.filter(Q(allocation__holder_id=org_id) | Q(allocation__trade__seller_id=org_id)
                                   | Q(allocation__listing_period__provider_id=org_id))
    if state:
        queryset = queryset.filter(state=state)
    return queryset.order_by("-id")


def settlement_list(*, actor: Actor):
    """Settlements the actor's organisation took part in: as holder, as seller, or as an
    owner paid a part of the proceeds; each with ``payouts_to_caller``. Newest first."""
    org_id = actor.membership.organisation_id
    paid = Payout.objects.filter(settlement_id=OuterRef("pk"), organisation_id=org_id)
    return (Settlement.objects.filter(Q(holder_id=org_id) | Q(seller_id=org_id) | Exists(paid))
            .select_related("trade__instrument")
            .prefetch_related(Prefetch("payouts", queryset=Payout.objects.filter(organisation_id=org_id).order_by("id"),
                                       to_attr="payouts_to_caller")))


def provider_sales(*, organisation_id: int) -> dict:
    """What the organisation's sales have settled to: totals over its settlements as seller,
    and the proceeds paid to each owner (the provider itself, co-owners) — two queries."""
    sold = Settlement.objects.filter(seller_id=organisation_id)
    totals = sold.aggregate(count=Count("pk"), scu_h=Coalesce(Sum("scu_h"), 0),
                            delivered=Coalesce(Sum("delivered_scu_h"), 0), paid=Coalesce(Sum("paid_fen"), 0),
                            fees=Coalesce(Sum("fee_fen"), 0), credits=Coalesce(Sum("sla_credit_fen"), 0),
                            payout=Coalesce(Sum("payout_fen"), 0))
    owners = (Payout.objects.filter(settlement__seller_id=organisation_id).values("organisation_id", "organisation__name")
              .annotate(amount=Sum("amount_fen"), settlements=Count("settlement_id")).order_by("-amount"))
    return {"totals": totals, "owners": list(owners)}


def sla_schedule() -> list[SlaCreditStep]:
    return list(SlaCreditStep.objects.order_by("-below_bp"))
