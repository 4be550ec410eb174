"""Settlement's events end to end, over the real channel layer (Redis) and WebSockets.

A resale chain: the provider sells to a reseller, the reseller resells to the holder. The
provider delivers the holder's allocation; its asset has three owners, two of which neither
buy nor sell. Each event must reach exactly the private streams of the organisations it
concerns, in order, numbered on from what each stream had seen, with its amounts, and with
nothing of the access credentials.
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from exchange.models import EventSequence
from tests.conftest import token_client
from tests.exchange.test_live import connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.usefixtures("asgi_closed")]

SECRET = "user: gpu-7 / key: Zq9-do-not-leak-4711"
SHARES = {"provider": 4500, "owner_a": 3500, "owner_b": 2000}


@sync_to_async
def chain_traded(buyer, provider, regulator) -> dict:
    """Everything up to the two trades of the chain; the parties' memberships and tokens."""
    from exchange import ledger
    from exchange.models import FeeTier
    from marketplace.models import AssetOwnership
    from tests.exchange.conftest import list_capacity, make_instrument
    from tests.factories import MembershipFactory
    from tests.settlement.conftest import Market, allocation_of, sla_schedule_ensure

    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5,
                                                                 is_default=True))
    sla_schedule_ensure()
    market = Market(make_instrument())
    reseller = MembershipFactory(organisation__kind="buyer", role="trader")
    owner_a, owner_b = (MembershipFactory(organisation__kind="provider", role="provider_admin") for _ in range(2))
    for member in (buyer, reseller):
        ledger.deposit(organisation=member.organisation, amount_fen=1_000_000_00)
    period = list_capacity(organisation=provider.organisation, instrument=market.instrument, scu_h=1000)
    long_ago = timezone.now() - timedelta(days=365)
    for member, key in ((provider, "provider"), (owner_a, "owner_a"), (owner_b, "owner_b")):
        AssetOwnership.objects.create(asset=period.listing.asset, organisation=member.organisation,
                                      share_bp=SHARES[key], effective_from=long_ago)
    first = market.trade(provider, reseller, 100, "20.00")
    resale = market.trade(reseller, buyer, 100, "20.40")
    parties = {"holder": buyer, "reseller": reseller, "provider": provider, "owner_a": owner_a, "owner_b": owner_b}
    return {
        "market": market, "parties": parties, "regulator": regulator,
        "allocation": allocation_of(resale), "source": allocation_of(first),
        "tokens": {name: token_client(m, scopes=("read",)).raw_token for name, m in parties.items()},
        "seen": {name: EventSequence.objects.filter(organisation_id=m.organisation_id).values_list("seq", flat=True)
                 .first() or 0 for name, m in parties.items()},
    }


@sync_to_async
def deliver_meter_dispute_settle(chain: dict) -> None:
    """Delivery started and confirmed, the window ends, metering, a dispute opened and adjusted, settled."""
    from accounts.access import actor_from_user
    from settlement.services import delivery_answer, delivery_start, dispute_open, dispute_resolve, metering_report

    market, parties, allocation = chain["market"], chain["parties"], chain["allocation"]
    provider, holder = actor_from_user(parties["provider"].user), actor_from_user(parties["holder"].user)
    delivery_start(actor=provider, allocation_id=allocation.id, endpoint="ssh://gpu-7.example:22", credentials=SECRET)
    delivery_answer(actor=holder, allocation_id=allocation.id, working=True)
    market.end_window()
    report = metering_report(actor=provider, allocation_id=allocation.id, device_hours="100", now=market.during)
    dispute = dispute_open(actor=holder, allocation_id=allocation.id, reason="One node was down for an hour",
                           report_id=report.id)
    dispute_resolve(actor=actor_from_user(chain["regulator"].user), dispute_id=dispute.id, outcome="adjust",
                    delivered_device_hours="99", note="The provider's own logs show 99 device-hours")
    assert market.settle() == 2  # the resale, then the allocation it came from; invariants checked


@sync_to_async
def settled_records(chain: dict) -> dict:
    from settlement.models import Payout, Settlement

    ids = (chain["allocation"].id, chain["source"].id)
    return {
        "settlements": {s.allocation_id: s for s in Settlement.objects.filter(allocation_id__in=ids)},
        "payouts": {(p.settlement_id, p.organisation_id): p for p in Payout.objects.filter(settlement_id__in=ids)},
    }


def cny(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


async def test_each_settlement_event_reaches_the_right_streams_in_order(buyer, provider, regulator):
    chain = await chain_traded(buyer, provider, regulator)
    streams = {name: await connect(f"/ws/events/?token={token}") for name, token in chain["tokens"].items()}
    for ws in streams.values():
        assert (await ws.receive_json_from(timeout=3))["type"] == "hello"

    await deliver_meter_dispute_settle(chain)

    lifecycle = ["delivery.started", "delivery.confirmed", "metering.reported", "dispute.opened", "dispute.resolved"]
    expected = {
        "holder": lifecycle + ["allocation.settled"],
        "reseller": lifecycle + ["payout.received", "allocation.settled", "allocation.settled"],
        "provider": lifecycle + ["payout.received", "allocation.settled"],
        "owner_a": ["payout.received"],
        "owner_b": ["payout.received"],
    }
    received = {}
    for name, types in expected.items():
        received[name] = [await streams[name].receive_json_from(timeout=5) for _ in types]
        assert [m["type"] for m in received[name]] == types, name
        first = chain["seen"][name] + 1  # numbered on from the trading events each stream had before
        assert [m["seq"] for m in received[name]] == list(range(first, first + len(types))), name
    for name, ws in streams.items():
        assert await ws.receive_nothing(timeout=0.3), f"{name} received more than its events"

    allocation, source = chain["allocation"], chain["source"]
    orgs = {name: m.organisation_id for name, m in chain["parties"].items()}
    # Before settlement every party of the delivered allocation hears of it: holder, seller, provider.
    for name in ("holder", "reseller", "provider"):
        events = received[name][:5]
        assert {(m["allocation_id"], m["trade_id"]) for m in events} == {(allocation.id, allocation.trade_id)}
        assert Decimal(events[2]["metered_device_hours"]) == 100 and events[2]["scu_h"] == 100
        assert events[4]["outcome"] == "adjusted" and Decimal(events[4]["delivered_device_hours"]) == 99

    records = await settled_records(chain)
    resold, origin = records["settlements"][allocation.id], records["settlements"][source.id]
    # The holder's allocation: 99 of 100 SCU·h at 20.40, refund 1 SCU·h, a 10 % SLA credit.
    holder_settled = received["holder"][5]
    assert (holder_settled["role"], holder_settled["allocation_id"], holder_settled["delivered_scu_h"],
            holder_settled["refunded_scu_h"], holder_settled["price"], holder_settled["refund"],
            holder_settled["sla_credit"], holder_settled["sla_credit_owed"]) == (
        "holder", allocation.id, 99, 1, "20.40", "20.40", "204.00", "0.00")
    reseller_payout, reseller_sold, reseller_held = received["reseller"][5:]
    assert (reseller_sold["role"], reseller_sold["allocation_id"], reseller_sold["paid"], reseller_sold["fee"],
            reseller_sold["payout"]) == ("seller", allocation.id, "2019.60", cny(resold.fee_fen), cny(resold.payout_fen))
    assert resold.payout_fen == 99 * 2040 - resold.fee_fen - 20400
    assert (reseller_payout["allocation_id"], reseller_payout["share_bp"], reseller_payout["amount"]) == (
        allocation.id, 10000, cny(resold.payout_fen))
    # The allocation it came from settles at its own price, the credit passed back along the chain.
    assert (reseller_held["role"], reseller_held["allocation_id"], reseller_held["delivered_scu_h"],
            reseller_held["refund"], reseller_held["sla_credit"]) == ("holder", source.id, 99, "20.00", "200.00")
    provider_sold = received["provider"][6]
    assert (provider_sold["role"], provider_sold["allocation_id"], provider_sold["paid"], provider_sold["payout"]) == (
        "seller", source.id, "1980.00", cny(origin.payout_fen))
    # Each owner of the asset, by its share, the parts summing exactly to the proceeds.
    paid = {}
    for name in ("provider", "owner_a", "owner_b"):
        event = received[name][5] if name == "provider" else received[name][0]
        payout = records["payouts"][(source.id, orgs[name])]
        assert (event["allocation_id"], event["share_bp"], event["amount"]) == (
            source.id, SHARES[name], cny(payout.amount_fen)), name
        paid[name] = payout.amount_fen
    assert sum(paid.values()) == origin.payout_fen > 0
    assert abs(paid["owner_a"] * 10000 - origin.payout_fen * 3500) < 10000

    # Nothing about the access credentials in any event on any stream.
    text = json.dumps(received)
    assert SECRET not in text and "Zq9" not in text and "credential" not in text.lower()
    for ws in streams.values():
        await ws.disconnect()
