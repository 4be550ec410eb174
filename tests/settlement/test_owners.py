"""Payouts to an asset's co-owners: largest remainder to the fen, by the share set in force
when each delivery window started."""

from datetime import timedelta

import pytest

from accounts.access import actor_from_user
from marketplace.models import ComputeAsset, ProvenanceEvent
from marketplace.services.assets import asset_owners_set
from settlement.models import Payout, Settlement
from settlement.runner import largest_remainder
from settlement.services import metering_report
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import OrganisationFactory
from tests.settlement.checks import balances, journal_kinds, legs_of
from tests.settlement.conftest import allocation_of

pytestmark = pytest.mark.django_db



def deliver_in_full(market, seller, trade) -> int:
    allocation = allocation_of(trade)
    metering_report(actor=actor_from_user(seller.user), allocation_id=allocation.id, device_hours=str(trade.qty),
                    now=market.during)
    return allocation.id


def payouts(allocation_id: int) -> dict[int, tuple[int, int]]:
    return {org: (bp, fen) for org, bp, fen in Payout.objects.filter(settlement_id=allocation_id)
            .values_list("organisation_id", "share_bp", "amount_fen")}


def test_three_co_owners_share_an_odd_amount_to_the_fen(market, seller, holder):
    provider_org = seller.organisation
    second, third = OrganisationFactory(kind="provider"), OrganisationFactory(kind="provider")
    asset = ComputeAsset.objects.get(provider=provider_org)
    # The largest share to the newest organisation, so the extra fen follow remainders, not ids.
    asset_owners_set(asset=asset, owners=[(provider_org, 3333), (second, 3333), (third, 3334)])
    trade = market.trade(seller, holder, 7, "20.01")
    # 7 × 2001 = 14,007 fen; the seller's fee (14,007 × 2 + 5000) // 10,000 = 3; payout 14,004.
    assert trade.seller_fee_fen == 3
    allocation_id = deliver_in_full(market, seller, trade)
    assert market.settle() == 1
    assert Settlement.objects.get(allocation_id=allocation_id).payout_fen == 14_004
    # 14,004 × 3334 / 10,000 = 4668.9336 → 4668, remainder 9336; 14,004 × 3333 / 10,000 = 4667.5332
    # → 4667, remainder 5332 (twice). 4668 + 4667 + 4667 = 14,002: two fen left, one to 9336 (the
    # third), one to the tie at 5332, which goes to the lower organisation id (the provider).
    assert payouts(allocation_id) == {provider_org.id: (3333, 4668), second.id: (3333, 4667),
                                      third.id: (3334, 4669)}
    assert sum(fen for _, fen in payouts(allocation_id).values()) == 14_004
    assert journal_kinds(allocation_id) == ["settlement", "payout"]
    assert legs_of(allocation_id, "payout") == sorted(
        [(provider_org.id, "payable", -14_004), (provider_org.id, "available", 4668), (second.id, "available", 4667),
         (third.id, "available", 4669)], key=str)
    assert balances(provider_org) == {"available": 4668}
    assert balances(second) == {"available": 4667}
    assert balances(third) == {"available": 4669}


@pytest.mark.parametrize("total, shares, expected", [
    # 1 fen among three: all to the largest remainder (3334 × 1 = 3334 beats 3333).
    (1, [(1, 3333), (2, 3333), (3, 3334)], [(1, 3333, 0), (2, 3333, 0), (3, 3334, 1)]),
    # 2 fen: the tie of equal remainders and shares goes to the lower id.
    (2, [(5, 3333), (4, 3333), (3, 3334)], [(5, 3333, 0), (4, 3333, 1), (3, 3334, 1)]),
    # 100 fen by 1/9999 bp: 0.01 → 0 and 99.99 → 99, remainders 100 and 9900: the 1 fen left to the
    # larger remainder (the larger share).
    (100, [(1, 1), (2, 9999)], [(1, 1, 0), (2, 9999, 100)]),
    # An even split is left alone.
    (10_000, [(1, 5000), (2, 5000)], [(1, 5000, 5000), (2, 5000, 5000)]),
])
def test_largest_remainder_sums_exactly(total, shares, expected):
    assert largest_remainder(total, shares) == expected
    assert sum(fen for _, _, fen in expected) == total


@pytest.mark.parametrize("before_start", [timedelta(hours=1), timedelta(0)], ids=["an_hour_before", "at_the_start"])
def test_a_change_of_owners_between_two_deliveries_pays_each_by_the_set_in_force_when_it_started(market, seller,
                                                                                               holder, before_start):
    first = market.instrument
    second = make_instrument(days_ahead=3)
    market.runner.load()  # the engine learns the second day
    list_capacity(organisation=seller.organisation, instrument=second, scu_h=1000)
    provider_org = seller.organisation
    asset = ComputeAsset.objects.get(provider=provider_org)  # one asset behind both days' listings
    partner, investor, latecomer = (OrganisationFactory(kind="provider") for _ in range(3))
    # Set 1 from now: in force when the first day starts.
    asset_owners_set(asset=asset, owners=[(provider_org, 5000), (partner, 5000)])
    # Set 2 from an hour before the second day, or from its very start: in force when it starts.
    asset_owners_set(asset=asset, owners=[(provider_org, 2000), (investor, 8000)],
                     effective_from=second.delivery_start - before_start)
    # Set 3 from an hour into the second day: too late for either delivery.
    asset_owners_set(asset=asset, owners=[(latecomer, 10000)],
                     effective_from=second.delivery_start + timedelta(hours=1))

    first_trade = market.trade(seller, holder, 10, "20.00")
    first_id = deliver_in_full(market, seller, first_trade)
    market.instrument = second
    second_trade = market.trade(seller, holder, 10, "20.00")
    second_id = deliver_in_full(market, seller, second_trade)
    assert {allocation_of(first_trade).trade.instrument_id, allocation_of(second_trade).trade.instrument_id} == {
        first.id, second.id}
    assert market.settle() == 2  # both days ended

    # Each: 10 × 2000 = 20,000; fee (20,000 × 2 + 5000) // 10,000 = 4; payout 19,996.
    # Day one by set 1: 19,996 × 5000 / 10,000 = 9,998 each, no remainder.
    assert payouts(first_id) == {provider_org.id: (5000, 9998), partner.id: (5000, 9998)}
    # Day two by set 2: 19,996 × 2000 / 10,000 = 3999.2 → 3999 (remainder 2000); × 8000 = 15996.8 →
    # 15996 (remainder 8000); the one fen left goes to the investor.
    assert payouts(second_id) == {provider_org.id: (2000, 3999), investor.id: (8000, 15997)}
    assert balances(provider_org) == {"available": 9998 + 3999}
    assert balances(partner) == {"available": 9998}
    assert balances(investor) == {"available": 15997}
    assert balances(latecomer) == {}
    for allocation_id in (first_id, second_id):
        assert journal_kinds(allocation_id) == ["settlement", "payout"]
    settled = ProvenanceEvent.objects.filter(asset=asset, kind="capacity_settled")
    assert sorted(row[0] for event in settled for row in event.payload["allocations"]) == sorted([first_id, second_id])
