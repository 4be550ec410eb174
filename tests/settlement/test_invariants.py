"""Each of settlement's invariants provoked on its own, by corrupting what a real settlement wrote."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.access import actor_from_user
from exchange.invariants import invariants_check
from exchange.models import Instrument
from settlement.models import Payout, Settlement
from settlement.runner import settle
from settlement.services import metering_report
from tests.settlement.conftest import allocation_of

pytestmark = pytest.mark.django_db


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.fixture
def settled(market, seller, holder):
    """An allocation of 100 SCU·h at 20.00, 97 delivered (25 % SLA credit), settled."""
    trade = market.trade(seller, holder, 100, "20.00")
    allocation = allocation_of(trade)
    market.end_window()
    metering_report(actor=actor_from_user(seller.user), allocation_id=allocation.id, device_hours="97",
                    now=market.during)
    assert market.settle() == 1
    return allocation


def assert_reported(*expected: str) -> None:
    assert invariants_check() == list(expected)
    with pytest.raises(CommandError, match=rf"{len(expected)} problem\(s\) found"):
        call_command("check_ledger", stdout=StringIO(), stderr=StringIO())


def test_payouts_that_do_not_sum_to_the_proceeds(settled):
    payout = Payout.objects.get(settlement_id=settled.id)
    sql("UPDATE settlement_payout SET amount_fen = amount_fen - 1 WHERE id = %s", [payout.id])
    assert_reported(f"allocation {settled.id}: owner payouts sum to {payout.amount_fen - 1} fen, the seller's "
                    f"proceeds were {payout.amount_fen} fen")


def test_a_settlement_record_without_its_mark_on_the_allocation(settled):
    sql("UPDATE exchange_allocation SET settled_at = NULL WHERE id = %s", [settled.id])
    problems = invariants_check()
    assert f"allocation {settled.id}: settled_at and its settlement record disagree" in problems


def test_a_settlement_whose_size_differs_from_its_allocation(settled):
    sql("UPDATE exchange_allocation SET scu_h = scu_h + 1 WHERE id = %s", [settled.id])
    problems = invariants_check()
    assert f"allocation {settled.id}: settled 100 SCU·h = 97 delivered + 3 refunded, but it is 101 SCU·h" in problems


def test_metering_beyond_the_allocation(settled):
    sql("INSERT INTO settlement_meterreport (allocation_id, device_hours, source, note, reported_by_id, created_at) "
        "SELECT %s, 10, 'api', '', reported_by_id, now() FROM settlement_meterreport LIMIT 1", [settled.id])
    assert_reported(f"allocation {settled.id}: metered 107 SCU·h of the 100 SCU·h it delivers")


def test_a_debt_account_that_does_not_match_the_debts(settled):
    seller_id = Settlement.objects.get().seller_id
    sql("UPDATE exchange_ledgeraccount SET balance = balance - 3 WHERE organisation_id = %s AND kind = 'debt'",
        [seller_id])
    sql("UPDATE exchange_ledgeraccount SET balance = balance + 3 WHERE organisation_id = %s AND kind = 'available'",
        [seller_id])
    problems = invariants_check()
    assert f"organisation {seller_id}: debt account -3 fen, outstanding debts say 0 fen" in problems


def test_an_allocation_nobody_settled(market, seller, holder, settings):
    trade = market.trade(seller, holder, 10, "20.00")
    allocation = allocation_of(trade)
    assert invariants_check() == []
    # Its window and dispute window ended longer ago than SETTLEMENT_OVERDUE_SECONDS: no runner ran.
    market.end_window(hours_ago=(settings.DISPUTE_WINDOW_SECONDS + settings.SETTLEMENT_OVERDUE_SECONDS) / 3600 + 1)
    end = Instrument.objects.get(pk=market.instrument.pk).delivery_end
    assert_reported(f"allocation {allocation.id}: delivery ended {end:%Y-%m-%d %H:%M} UTC and its dispute window "
                    "passed, but it is not settled and waits for nothing (is the settlement runner running?)")
    assert settle(now=timezone.now() + timedelta(seconds=1)) == 1
    assert invariants_check() == []
