"""Everyone around one allocation, each with an API client, for the settlement API tests.

The holder is a provider organisation that bought: its token carries ``provide`` as well as
``trade``, so it can try the provider's actions (and be refused for not being the
provider, rather than for a missing scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from accounts.access import actor_from_user
from accounts.models import Membership, Organisation
from exchange.models import Allocation, IdempotencyRecord, Instrument
from settlement.models import Delivery, Dispute, MeterReport
from tests.conftest import token_client
from tests.exchange.conftest import list_capacity
from tests.factories import MembershipFactory
from tests.settlement.conftest import allocation_of, funded

BASE = "/api/v1/settlement/"
ALL = ("read", "trade", "provide")


@dataclass
class Parties:
    market: object
    allocation: Allocation
    other_allocation: Allocation  # delivered by another provider to another buyer
    members: dict[str, Membership]
    clients: dict[str, APIClient]

    def __getitem__(self, name: str) -> APIClient:
        return self.clients[name]

    def actor(self, name: str):
        return actor_from_user(self.members[name].user)


def parties_make(market, provider, regulator) -> Parties:
    """``provider`` sells 100 SCU·h to the holder at 20.00; another provider sells 10 to another buyer."""
    list_capacity(organisation=provider.organisation, instrument=market.instrument, scu_h=1000)
    holder = funded("provider")
    other_provider, other_buyer = funded("provider"), funded("buyer")
    list_capacity(organisation=other_provider.organisation, instrument=market.instrument, scu_h=1000)
    allocation = allocation_of(market.trade(provider, holder, 100, "20.00"))
    other_allocation = allocation_of(market.trade(other_provider, other_buyer, 10, "20.00"))
    viewer = MembershipFactory(organisation__kind=Organisation.Kind.OPERATOR, role=Membership.Role.VIEWER)
    members = {"provider": provider, "holder": holder, "other_provider": other_provider, "other_buyer": other_buyer,
               "viewer": viewer, "regulator": regulator}
    clients = {
        "provider": token_client(provider, ALL),
        "provider_read": token_client(provider, ("read",)),
        "holder": token_client(holder, ALL),
        "holder_read": token_client(holder, ("read",)),
        "other_provider": token_client(other_provider, ALL),
        "other_buyer": token_client(other_buyer, ("read", "trade")),
        "viewer": token_client(viewer, ("read",)),
        "regulator": token_client(regulator, ("read", "supervise")),
        "regulator_read": token_client(regulator, ("read",)),
        "anonymous": APIClient(),
    }
    return Parties(market=market, allocation=allocation, other_allocation=other_allocation, members=members,
                   clients=clients)


def window_open(market, *, started_hours_ago: float = 1) -> Instrument:
    """Put now inside the instrument's delivery window (after trading: the book is closed)."""
    start = timezone.now() - timedelta(hours=started_hours_ago)
    Instrument.objects.filter(pk=market.instrument.pk).update(
        delivery_start=start, delivery_end=start + timedelta(days=1), gate_closure_at=start - timedelta(hours=2),
        state=Instrument.State.CLOSED)
    market.instrument.refresh_from_db()
    return market.instrument


def writes() -> dict:
    """What the settlement API can write, counted: a refused request leaves all of it alone."""
    from django.db.models import Sum

    from exchange.models import EventSequence

    return {
        "deliveries": list(Delivery.objects.values_list("pk", "state", "endpoint", "credentials_encrypted")),
        "reports": MeterReport.objects.count(),
        "disputes": list(Dispute.objects.values_list("pk", "state")),
        "events": EventSequence.objects.aggregate(s=Sum("seq"))["s"] or 0,
        "keys": IdempotencyRecord.objects.count(),
    }


def post(client: APIClient, path: str, body, *, key: str | None = None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(BASE + path, body, format="json", **headers, **extra)


def allocation_make(*, provider: Membership, buyer: Membership, days_ahead: int = 3, qty: int = 5) -> Allocation:
    """``buyer`` (funded) buys ``qty`` SCU·h of ``provider``'s capacity in an instrument of its
    own, ``days_ahead`` days out, through order entry and the engine; the allocation."""
    from exchange.engine import EngineRunner
    from exchange.services import order_place
    from tests.exchange.conftest import drain, make_instrument

    instrument = make_instrument(days_ahead=days_ahead)
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=qty * 10)
    for member, side in ((provider, "sell"), (buyer, "buy")):
        order_place(actor=actor_from_user(member.user),
                    data={"instrument": instrument.code, "side": side, "price": "20.00", "qty": qty})
    engine = EngineRunner()
    engine.load()
    drain(engine)
    return Allocation.objects.get(holder=buyer.organisation, trade__instrument=instrument)


def dispute_make(allocation: Allocation, *, by: Membership) -> Dispute:
    """An open dispute straight in the table (the service takes one only within the window)."""
    return Dispute.objects.create(allocation=allocation, reason="Nothing delivered", opened_by=by.user)
