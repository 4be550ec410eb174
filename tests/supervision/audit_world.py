"""A world with one record of every kind the audit trail shows, for its tests: two trades
delivered, metered, disputed, resolved, settled and paid out; a regulator's KYC decision
and a halt; an order amended and cancelled in another instrument; the instrument commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from accounts.access import actor_from_user
from exchange import services
from exchange.instruments import instrument_halt
from exchange.models import InboxCommand, Instrument, Order
from marketplace.models import AssetOwnership
from settlement.models import Delivery
from supervision.services import action_record
from tests.exchange.conftest import drain, make_instrument
from tests.settlement.parties import parties_make, post, window_open

SECRET = "user alice / key sk-91b2-AUDIT-NEVER-SHOWN"
ENDPOINT = "ssh://gpu-audit-7.internal.example:22"


@dataclass
class World:
    parties: object
    other_instrument: Instrument
    amended: Order


def audit_world(market, provider, regulator) -> World:
    parties = parties_make(market, provider, regulator)
    window_open(market)
    allocation = parties.allocation.id
    assert post(parties["provider"], f"allocations/{allocation}/delivery/",
                {"endpoint": ENDPOINT, "credentials": SECRET}).status_code in (200, 201)
    for actor, path, body in (
        ("holder", f"allocations/{allocation}/delivery/answer/", {"working": True, "note": "works"}),
        ("provider", f"allocations/{allocation}/metering/", {"device_hours": "90"}),
        ("holder", f"allocations/{allocation}/disputes/", {"reason": "Only 80 device-hours"}),
    ):
        response = post(parties[actor], path, body)
        assert response.status_code in (200, 201), response.json()
    dispute = response.json()["id"]
    response = post(parties["regulator"], f"disputes/{dispute}/resolve/",
                    {"outcome": "adjust", "note": "96 it is", "delivered_device_hours": "96"})
    assert response.status_code == 200, response.json()
    # Two owners share the provider's asset: its settlement pays both out.
    asset = parties.allocation.listing_period.listing.asset
    for member, share in (("provider", 6000), ("other_buyer", 4000)):
        AssetOwnership.objects.create(asset=asset, organisation=parties.members[member].organisation, share_bp=share,
                                      effective_from=datetime(2000, 1, 1, tzinfo=dt_timezone.utc))
    market.end_window()
    assert market.settle() == 2
    assert Delivery.objects.get(pk=allocation).credentials_encrypted

    # Orders changed in another instrument, and that instrument's own commands.
    other = make_instrument(days_ahead=5)
    holder = actor_from_user(parties.members["holder"].user)
    order, _ = services.order_place(actor=holder, data={"instrument": other.code, "side": "buy", "price": "18.00",
                                                          "qty": 10, "client_order_id": "audit-amended"})
    drain(market.runner)
    services.order_amend(actor=holder, order_id=order.id, data={"price": "18.50"})
    drain(market.runner)
    services.order_cancel(actor=holder, order_id=order.id)
    drain(market.runner)
    instrument_halt(instrument=other)
    for action in (InboxCommand.Action.UNCROSS, InboxCommand.Action.EXPIRE, InboxCommand.Action.CLOSE):
        InboxCommand.objects.create(instrument=other, action=action)  # pending: the engine has not read them
    regulator_actor = actor_from_user(regulator.user)
    action_record(actor=regulator_actor, action="kyc.approve", reason="Documents checked",
                  organisation=parties.members["holder"].organisation)
    action_record(actor=regulator_actor, action="instrument.halt", reason="Disorderly market", instrument=other)
    return World(parties, other, Order.objects.get(pk=order.id))
