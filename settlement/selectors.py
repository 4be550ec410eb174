"""Reads for settlement: which allocations an organisation may see, and in which role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Q, Sum

from accounts.access import Actor
from exchange.errors import NotFound
from exchange.models import Allocation
from settlement import secrets
from settlement.models import Delivery, MeterReport

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
