"""Settlement of one allocation at each point of the SLA schedule, and when nothing arrived.

Every case trades 1000 SCU·h at 20.00 CNY (2000 fen): value n·p = 1000 × 2000 = 2,000,000 fen.
Fees (the standard tier): the seller is the maker, 2 bp → (2,000,000 × 2 + 5000) // 10,000 =
400 fen, charged to its payable at the trade; the buyer the taker, 5 bp → 1000 fen.
"""

import pytest

from accounts.access import actor_from_user
from exchange import ledger
from settlement.models import Debt, Settlement
from settlement.services import metering_report
from tests.settlement.checks import balances, exchange_fees, journal_kinds, legs_of
from tests.settlement.conftest import allocation_of

pytestmark = pytest.mark.django_db

HOLDER_FUNDS = 100_000_000  # the holder fixture's deposit, fen
SELLER_FUNDS = 5_000_000  # enough for any credit here: the debt case is in test_debts.py
VALUE, SELLER_FEE, BUYER_FEE = 2_000_000, 400, 1000

# delivered SCU·h → (credit bp, paid d·p, refund (n−d)·p, credit, of it from the seller's available, payout,
# journals)
CASES = {
    # Everything arrived: 1000 × 2000 paid; payout 2,000,000 − 400 fee.
    1000: (0, 2_000_000, 0, 0, 0, 1_999_600, ["settlement", "payout"]),
    # Exactly 99.9 %: not below the first step, no credit. 999 × 2000; refund 1 × 2000; payout − 400.
    999: (0, 1_998_000, 2_000, 0, 0, 1_997_600, ["settlement", "refund", "payout"]),
    # Just below 99.9 %: 10 % of 2,000,000 = 200,000 from the proceeds; payout 1,996,000 − 400 − 200,000.
    998: (1000, 1_996_000, 4_000, 200_000, 0, 1_795_600, ["settlement", "refund", "sla_credit", "payout"]),
    # Exactly 99 %: still only below 99.9 % → 10 %. 1,980,000 − 400 − 200,000.
    990: (1000, 1_980_000, 20_000, 200_000, 0, 1_779_600, ["settlement", "refund", "sla_credit", "payout"]),
    # Just below 99 %: 25 % = 500,000. 1,978,000 − 400 − 500,000.
    989: (2500, 1_978_000, 22_000, 500_000, 0, 1_477_600, ["settlement", "refund", "sla_credit", "payout"]),
    # Exactly 95 %: still 25 %. 1,900,000 − 400 − 500,000.
    950: (2500, 1_900_000, 100_000, 500_000, 0, 1_399_600, ["settlement", "refund", "sla_credit", "payout"]),
    # Just below 95 %: 100 % = 2,000,000; the proceeds after the fee, 1,898,000 − 400 = 1,897,600, pay
    # part of it and the seller's available the other 102,400; nothing left to pay out.
    949: (10000, 1_898_000, 102_000, 2_000_000, 102_400, 0, ["settlement", "refund", "sla_credit"]),
    # Nothing at all: all 2,000,000 refunded, 100 % credit from the seller's available, and the
    # 400 fee its payable was charged at the trade comes from its available too (no proceeds).
    0: (10000, 0, 2_000_000, 2_000_000, 2_000_000, 0, ["refund", "sla_credit", "settlement"]),
}



@pytest.mark.parametrize("delivered", list(CASES), ids=[f"delivered_{d}" for d in CASES])
def test_one_allocation_settles_by_the_published_schedule(market, seller, holder, delivered):
    credit_bp, paid, refund, credit, from_available, payout, kinds = CASES[delivered]
    ledger.deposit(organisation=seller.organisation, amount_fen=SELLER_FUNDS)
    trade = market.trade(seller, holder, 1000, "20.00")
    assert (trade.seller_fee_fen, trade.buyer_fee_fen) == (SELLER_FEE, BUYER_FEE)
    allocation = allocation_of(trade)
    if delivered:
        metering_report(actor=actor_from_user(seller.user), allocation_id=allocation.id,
                        device_hours=str(delivered), now=market.during)
    assert market.settle() == 1

    s = Settlement.objects.get(allocation=allocation)
    assert (s.delivered_scu_h, s.refunded_scu_h, s.sla_credit_bp) == (delivered, 1000 - delivered, credit_bp)
    assert (s.paid_fen, s.refund_fen, s.fee_fen, s.sla_credit_fen, s.payout_fen) == (paid, refund, SELLER_FEE, credit,
                                                                                      payout)
    assert (s.credit_debt_fen, s.fee_debt_fen, s.debt_repaid_fen) == (0, 0, 0)
    assert journal_kinds(allocation.id) == kinds
    holder_org, seller_org = holder.organisation_id, seller.organisation_id
    fee_from_available = 0 if paid else SELLER_FEE  # no proceeds to charge the trade's fee to
    assert legs_of(allocation.id, "settlement") == sorted(
        [(holder_org, "escrow", -paid), (seller_org, "payable", paid)] if paid else
        [(seller_org, "available", -SELLER_FEE), (seller_org, "payable", SELLER_FEE)], key=str)
    assert legs_of(allocation.id, "refund") == (sorted([(holder_org, "escrow", -refund),
                                                        (holder_org, "available", refund)], key=str) if refund else [])
    from_proceeds = credit - from_available
    assert legs_of(allocation.id, "sla_credit") == sorted(
        [leg for leg in [(seller_org, "payable", -from_proceeds), (seller_org, "available", -from_available),
                         (holder_org, "available", credit)] if leg[2]], key=str)
    assert legs_of(allocation.id, "payout") == (sorted([(seller_org, "payable", -payout),
                                                        (seller_org, "available", payout)], key=str) if payout else [])
    # The holder: its deposit, less the value and its fee, plus what came back.
    assert balances(holder.organisation) == {"available": HOLDER_FUNDS - VALUE - BUYER_FEE + refund + credit}
    # The seller (sole owner of its asset): its funds, less what its available paid, plus the payout.
    assert balances(seller.organisation) == {"available": SELLER_FUNDS - from_available - fee_from_available + payout}
    assert exchange_fees() == SELLER_FEE + BUYER_FEE
    assert not Debt.objects.exists()
    assert market.settle() == 0  # settled once


def test_each_step_of_an_edited_schedule_applies(market, seller, holder):
    """The operator's schedule, not a built-in one: one step, below 80 % → 50 %."""
    from settlement.models import SlaCreditStep

    SlaCreditStep.objects.all().delete()
    SlaCreditStep.objects.create(below_bp=8000, credit_bp=5000)
    trade = market.trade(seller, holder, 100, "20.00")
    allocation = allocation_of(trade)
    metering_report(actor=actor_from_user(seller.user), allocation_id=allocation.id, device_hours="79",
                    now=market.during)
    assert market.settle() == 1
    s = Settlement.objects.get()
    # 100 × 2000 = 200,000 value; 50 % = 100,000; proceeds 79 × 2000 = 158,000, fee (200,000 × 2 + 5000)
    # // 10,000 = 40; payout 158,000 − 40 − 100,000 = 57,960.
    assert (s.sla_credit_bp, s.sla_credit_fen, s.fee_fen, s.payout_fen) == (5000, 100_000, 40, 57_960)
    assert journal_kinds(allocation.id) == ["settlement", "refund", "sla_credit", "payout"]
