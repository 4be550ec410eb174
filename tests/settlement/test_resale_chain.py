"""A resale chain settles trade by trade, each at its own price, with what was delivered at the
end of the chain; SLA credits pass back along it.

provider P sells 100 SCU·h to A at 20.00, A resells them to B at 21.00, B to C at 22.00, all in
one instrument. P delivers C's allocation short: 98 SCU·h (98 %: below 99 % → 25 % credit).
Fees: each seller is the maker (2 bp), each buyer the taker (5 bp), on the trade's notional.
"""

import pytest

from accounts.access import actor_from_user
from exchange.errors import AppError
from exchange.models import Allocation
from settlement.models import Settlement
from settlement.services import metering_report
from tests.settlement.checks import balances, exchange_fees, journal_kinds, legs_of
from tests.settlement.conftest import allocation_of, funded

pytestmark = pytest.mark.django_db

FUNDS = 100_000_000



@pytest.fixture
def chain(market, seller):
    a, b, c = funded(), funded(), funded()
    trades = [market.trade(seller, a, 100, "20.00"), market.trade(a, b, 100, "21.00"), market.trade(b, c, 100, "22.00")]
    first, second, third = (allocation_of(t) for t in trades)
    assert (second.source_id, third.source_id) == (first.id, second.id)
    assert (first.resold_scu_h, second.resold_scu_h, third.resold_scu_h) == (100, 100, 0)
    return a, b, c, trades, (first, second, third)


def test_a_chain_of_three_settles_each_trade_at_its_own_price(market, seller, chain):
    a, b, c, trades, (first, second, third) = chain
    # Notionals 200,000, 210,000 and 220,000: sellers' fees 40, 42, 44; buyers' 100, 105, 110.
    assert [(t.seller_fee_fen, t.buyer_fee_fen) for t in trades] == [(40, 100), (42, 105), (44, 110)]
    provider_actor = actor_from_user(seller.user)
    # Capacity passed on is delivered where it ended up, not on the allocations that resold it.
    for resold in (first, second):
        with pytest.raises(AppError) as err:
            metering_report(actor=provider_actor, allocation_id=resold.id, device_hours="1", now=market.during)
        assert err.value.code == "beyond_allocation"
    metering_report(actor=provider_actor, allocation_id=third.id, device_hours="98", now=market.during)
    assert market.settle() == 3
    assert Allocation.objects.filter(settled_at=None).count() == 0

    got = {s.allocation_id: s for s in Settlement.objects.all()}
    # C's allocation (B sold it at 22.00): paid 98 × 2200 = 215,600; refund 2 × 2200 = 4,400; credit
    # 25 % of 220,000 = 55,000 from the proceeds; B receives 215,600 − 44 − 55,000 = 160,556.
    # B's (A sold it at 21.00), with the 98 its resale delivered: paid 98 × 2100 = 205,800; refund
    # 4,200; credit 25 % of 210,000 = 52,500; A receives 205,800 − 42 − 52,500 = 153,258.
    # A's (P sold it at 20.00): paid 196,000; refund 4,000; credit 50,000; P's owners (P alone)
    # receive 196,000 − 40 − 50,000 = 145,960.
    expected = {
        third.id: (b, c, 2200, 98, 2, 215_600, 4_400, 2500, 55_000, 44, 160_556),
        second.id: (a, b, 2100, 98, 2, 205_800, 4_200, 2500, 52_500, 42, 153_258),
        first.id: (seller, a, 2000, 98, 2, 196_000, 4_000, 2500, 50_000, 40, 145_960),
    }
    for allocation_id, (sold_by, held_by, price, delivered, refunded, paid, refund, credit_bp, credit, fee,
                        payout) in expected.items():
        s = got[allocation_id]
        assert (s.seller_id, s.holder_id, s.price_fen) == (sold_by.organisation_id, held_by.organisation_id, price)
        assert (s.delivered_scu_h, s.refunded_scu_h, s.paid_fen, s.refund_fen) == (delivered, refunded, paid, refund)
        assert (s.sla_credit_bp, s.sla_credit_fen, s.fee_fen, s.payout_fen) == (credit_bp, credit, fee, payout)
        assert journal_kinds(allocation_id) == ["settlement", "refund", "sla_credit", "payout"]
        # The payout goes to the seller itself (a reseller) or to the asset's owners (P alone).
        assert legs_of(allocation_id, "payout") == sorted(
            [(sold_by.organisation_id, "payable", -payout), (sold_by.organisation_id, "available", payout)], key=str)
        assert legs_of(allocation_id, "sla_credit") == sorted(
            [(sold_by.organisation_id, "payable", -credit), (held_by.organisation_id, "available", credit)], key=str)
    # Child first: a resold allocation settles only once its resales have (its journals come later).
    from exchange.models import Journal

    order = list(Journal.objects.filter(allocation__isnull=False).order_by("id")
                 .values_list("allocation_id", flat=True))
    assert sorted(set(order), key=order.index) == [third.id, second.id, first.id]

    # A: paid 200,000 + 100 for its purchase; got 153,258 for its resale, 4,000 + 50,000 back.
    assert balances(a.organisation) == {"available": FUNDS - 200_100 + 153_258 + 54_000}
    # B: paid 210,000 + 105; got 160,556 for its resale, 4,200 + 52,500 back.
    assert balances(b.organisation) == {"available": FUNDS - 210_105 + 160_556 + 56_700}
    # C: paid 220,000 + 110; got 4,400 + 55,000 back.
    assert balances(c.organisation) == {"available": FUNDS - 220_110 + 59_400}
    assert balances(seller.organisation) == {"available": 145_960}
    assert exchange_fees() == 40 + 100 + 42 + 105 + 44 + 110


def test_a_partly_resold_allocation_counts_its_own_delivery_and_its_resales(market, seller):
    """A keeps 40 of its 100 and resells 60 to B; P delivers A's 40 in full and B's 60 short."""
    a, b = funded(), funded()
    first = allocation_of(market.trade(seller, a, 100, "20.00"))
    second = allocation_of(market.trade(a, b, 60, "21.00"))
    first.refresh_from_db()
    assert (first.resold_scu_h, second.source_id) == (60, first.id)
    provider_actor = actor_from_user(seller.user)
    with pytest.raises(AppError) as err:  # A's own part is 40
        metering_report(actor=provider_actor, allocation_id=first.id, device_hours="41", now=market.during)
    assert err.value.code == "beyond_allocation"
    metering_report(actor=provider_actor, allocation_id=first.id, device_hours="40", now=market.during)
    metering_report(actor=provider_actor, allocation_id=second.id, device_hours="57", now=market.during)
    assert market.settle() == 2
    got = {s.allocation_id: s for s in Settlement.objects.all()}
    # B's 60 at 21.00: 57 delivered (95 %, not below 95 % → 25 %): paid 57 × 2100 = 119,700, refund
    # 3 × 2100 = 6,300, credit 25 % of 126,000 = 31,500; fee (126,000 × 2 + 5000) // 10,000 = 25;
    # A receives 119,700 − 25 − 31,500 = 88,175.
    assert (got[second.id].delivered_scu_h, got[second.id].paid_fen, got[second.id].sla_credit_fen,
            got[second.id].payout_fen) == (57, 119_700, 31_500, 88_175)
    # A's 100 at 20.00: 40 of its own + 57 of its resale = 97 (below 99 % → 25 %): paid 194,000,
    # refund 6,000, credit 50,000, fee 40; P receives 194,000 − 40 − 50,000 = 143,960.
    assert (got[first.id].delivered_scu_h, got[first.id].paid_fen, got[first.id].refund_fen,
            got[first.id].sla_credit_fen, got[first.id].payout_fen) == (97, 194_000, 6_000, 50_000, 143_960)
    assert balances(seller.organisation) == {"available": 143_960}


def test_a_chain_waits_for_an_open_dispute_at_its_end(market, seller, regulator, chain):
    from settlement.services import dispute_open, dispute_resolve

    a, b, c, trades, (first, second, third) = chain
    metering_report(actor=actor_from_user(seller.user), allocation_id=third.id, device_hours="100", now=market.during)
    market.end_window()
    dispute = dispute_open(actor=actor_from_user(c.user), allocation_id=third.id, reason="A node was missing")
    assert market.settle() == 0  # the end waits for the outcome, and the chain for its end
    dispute_resolve(actor=actor_from_user(regulator.user), dispute_id=dispute.id, outcome="adjust",
                    delivered_device_hours="0", note="Never reachable")
    assert market.settle() == 3
    # Nothing delivered anywhere: each holder gets its whole price back.
    assert [Settlement.objects.get(allocation=x).refund_fen for x in (first, second, third)] == [
        200_000, 210_000, 220_000]
