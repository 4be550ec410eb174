"""A seller who cannot pay an SLA credit: the rest is its debt, owed to the holder, and is taken
from its next proceeds, oldest debt first.

Trades of 100 SCU·h at 20.00 CNY: value 200,000 fen, the seller's fee (maker, 2 bp) 40, the
buyer's (taker, 5 bp) 100; 50 SCU·h: value 100,000, seller's fee (100,000 × 2 + 5000) // 10,000 = 20.
"""

import pytest

from accounts.access import actor_from_user
from exchange import ledger
from settlement.models import Debt, Settlement
from settlement.services import metering_report
from tests.settlement.checks import balances, journal_kinds, legs_of
from tests.settlement.conftest import allocation_of, funded

pytestmark = pytest.mark.django_db

FUNDS = 100_000_000



def delivered(market, seller, trade, device_hours: str | None) -> int:
    allocation = allocation_of(trade)
    if device_hours:
        metering_report(actor=actor_from_user(seller.user), allocation_id=allocation.id, device_hours=device_hours,
                        now=market.during)
    return allocation.id


def test_a_credit_the_seller_cannot_pay_is_owed_to_the_holder_and_repaid_from_its_next_proceeds(market, seller,
                                                                                                 holder):
    ledger.deposit(organisation=seller.organisation, amount_fen=5_000)
    s_org, h_org = seller.organisation_id, holder.organisation_id
    first = delivered(market, seller, market.trade(seller, holder, 100, "20.00"), "90")
    assert market.settle() == 1
    # 90 % delivered: 100 % credit, 200,000. Proceeds 90 × 2000 = 180,000 less the 40 fee pay
    # 179,960 of it, the seller's 5,000 more, and the rest, 200,000 − 179,960 − 5,000 = 15,040, is
    # its debt to the holder.
    s = Settlement.objects.get(allocation_id=first)
    assert (s.paid_fen, s.refund_fen, s.sla_credit_fen, s.credit_debt_fen, s.payout_fen) == (
        180_000, 20_000, 200_000, 15_040, 0)
    assert journal_kinds(first) == ["settlement", "refund", "sla_credit", "debt"]
    assert legs_of(first, "sla_credit") == sorted([(s_org, "payable", -179_960), (s_org, "available", -5_000),
                                                   (h_org, "available", 184_960)], key=str)
    assert legs_of(first, "debt") == sorted([(s_org, "debt", -15_040), (h_org, "receivable", 15_040)], key=str)
    debt = Debt.objects.get()
    assert (debt.debtor_id, debt.creditor_id, debt.settlement_id, debt.amount_fen, debt.repaid_fen) == (
        s_org, h_org, first, 15_040, 0)
    assert balances(seller.organisation) == {"debt": -15_040}
    # 100,000,000 − 200,000 − 100 + 20,000 refunded + 184,960 credited; 15,040 still to come.
    assert balances(holder.organisation) == {"available": 100_004_860, "receivable": 15_040}

    other = funded()
    second = delivered(market, seller, market.trade(seller, other, 100, "20.00"), "100")
    assert market.settle() == 1
    # In full: 200,000 − 40 = 199,960 of proceeds; 15,040 repay the debt, 184,920 are paid out.
    s = Settlement.objects.get(allocation_id=second)
    assert (s.paid_fen, s.debt_repaid_fen, s.payout_fen, s.credit_debt_fen) == (200_000, 15_040, 184_920, 0)
    assert journal_kinds(second) == ["settlement", "debt_repayment", "payout"]
    assert legs_of(second, "debt_repayment") == sorted([(s_org, "payable", -15_040), (s_org, "debt", 15_040),
                                                        (h_org, "receivable", -15_040), (h_org, "available", 15_040)],
                                                       key=str)
    debt.refresh_from_db()
    assert debt.repaid_fen == 15_040
    assert balances(seller.organisation) == {"available": 184_920}
    assert balances(holder.organisation) == {"available": 100_019_900}
    assert balances(other.organisation) == {"available": FUNDS - 200_100}


def test_debts_are_repaid_oldest_first_and_in_part(market, seller, holder):
    """Nothing delivered and no funds: the credit and the fee become debts; later proceeds
    repay the credit first (in part, then the rest), then the fee."""
    s_org, h_org = seller.organisation_id, holder.organisation_id
    first = delivered(market, seller, market.trade(seller, holder, 100, "20.00"), None)
    assert market.settle() == 1
    # All 200,000 refunded; the 100 % credit, 200,000, owed to the holder; the 40 fee the payable
    # was charged at the trade, owed to the exchange (a debt with no creditor).
    s = Settlement.objects.get(allocation_id=first)
    assert (s.refund_fen, s.sla_credit_fen, s.credit_debt_fen, s.fee_debt_fen) == (200_000, 200_000, 200_000, 40)
    assert journal_kinds(first) == ["refund", "debt", "debt"]
    assert legs_of(first, "debt") == sorted([(s_org, "debt", -200_000), (h_org, "receivable", 200_000),
                                             (s_org, "debt", -40), (s_org, "payable", 40)], key=str)
    credit_debt, fee_debt = Debt.objects.order_by("id")
    assert (credit_debt.creditor_id, credit_debt.amount_fen, fee_debt.creditor_id, fee_debt.amount_fen) == (
        h_org, 200_000, None, 40)
    assert balances(seller.organisation) == {"debt": -200_040}
    assert balances(holder.organisation) == {"available": FUNDS - 200_100 + 200_000, "receivable": 200_000}

    second = delivered(market, seller, market.trade(seller, funded(), 50, "20.00"), "50")
    assert market.settle() == 1
    # 100,000 − 20 = 99,980, all to the oldest debt; nothing left to pay out.
    s = Settlement.objects.get(allocation_id=second)
    assert (s.debt_repaid_fen, s.payout_fen) == (99_980, 0)
    assert journal_kinds(second) == ["settlement", "debt_repayment"]
    credit_debt.refresh_from_db(), fee_debt.refresh_from_db()
    assert (credit_debt.repaid_fen, fee_debt.repaid_fen) == (99_980, 0)
    assert balances(seller.organisation) == {"debt": -200_040 + 99_980}
    assert balances(holder.organisation) == {"available": FUNDS - 100 + 99_980, "receivable": 200_000 - 99_980}

    third = delivered(market, seller, market.trade(seller, funded(), 100, "20.00"), "100")
    assert market.settle() == 1
    # 199,960: the credit's last 100,020, then the fee's 40; 99,900 paid out.
    s = Settlement.objects.get(allocation_id=third)
    assert (s.debt_repaid_fen, s.payout_fen) == (100_060, 99_900)
    assert journal_kinds(third) == ["settlement", "debt_repayment", "debt_repayment", "payout"]
    credit_debt.refresh_from_db(), fee_debt.refresh_from_db()
    assert (credit_debt.repaid_fen, fee_debt.repaid_fen) == (200_000, 40)
    assert balances(seller.organisation) == {"available": 99_900}
    # The holder has its 200,100 back and the whole credit: 100,000,000 − 200,100 + 200,000 + 200,000.
    assert balances(holder.organisation) == {"available": FUNDS + 199_900}


def test_a_debt_recorded_in_a_batch_is_repaid_from_proceeds_later_in_the_same_batch(market, seller, holder):
    """Two allocations of one seller settle together: one delivered in full, one not at all.
    Whichever the runner takes first, the holder is owed only what the seller's money as a
    whole cannot pay; the seller keeps nothing while it owes."""
    h_org = holder.organisation_id
    delivered_first = delivered(market, seller, market.trade(seller, funded(), 100, "20.00"), "100")
    nothing = delivered(market, seller, market.trade(seller, holder, 100, "20.00"), None)
    assert market.settle() == 2
    # The seller's money: the first's proceeds, 200,000 − 40 = 199,960, and nothing else. What it
    # owes for the second: the 200,000 credit and its 40 fee. So 199,960 of the credit reach the
    # holder now; 40 of it stay owed to the holder, and the 40 fee to the exchange.
    assert balances(seller.organisation) == {"debt": -80}
    # 100,000,000 − 200,100 paid, + 200,000 refunded, + 199,960 of the credit.
    assert balances(holder.organisation) == {"available": FUNDS - 200_100 + 200_000 + 199_960, "receivable": 40}
    assert sorted(((d.creditor_id, d.amount_fen - d.repaid_fen) for d in Debt.objects.all()), key=str) == sorted(
        [(h_org, 40), (None, 40)], key=str)
    for allocation_id in (delivered_first, nothing):
        journal_kinds(allocation_id)  # each journal balanced
