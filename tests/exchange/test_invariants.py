"""Each invariant of ``check_ledger`` provoked on its own, by corrupting the rows a real trade wrote.

The engine writes journals, legs, trades and allocations in bulk, most without database
constraints (models.py); these checks are what would notice if one of those writes went
wrong, so each must be seen to fire, by name, and make the command fail.
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from exchange import ledger
from exchange.invariants import invariants_check
from exchange.models import Allocation, Journal, LedgerAccount, LedgerLeg, Order, Trade
from marketplace.models import ListingPeriod
from tests.conftest import token_client
from tests.exchange.conftest import drain

pytestmark = pytest.mark.django_db


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.fixture
def traded(instrument, funded_buyer, listed_provider, runner):
    """A trade of 60 SCU·h (ask 100 at 20.00, bid 60 at 20.50), and a bid of 10 at 19.00 resting."""
    seller, buyer = token_client(listed_provider), token_client(funded_buyer)
    assert seller.post("/api/v1/orders/", {"instrument": instrument.code, "side": "sell", "price": "20.00",
                                           "qty": 100}, format="json").status_code == 201
    drain(runner)
    for price, qty in (("20.50", 60), ("19.00", 10)):
        assert buyer.post("/api/v1/orders/", {"instrument": instrument.code, "side": "buy", "price": price,
                                              "qty": qty}, format="json").status_code == 201
    drain(runner)
    trade = Trade.objects.get()
    resting = Order.objects.get(side="buy", status=Order.Status.OPEN)
    assert invariants_check() == []
    call_command("check_ledger", stdout=StringIO())
    return {"trade": trade, "resting": resting, "buyer": funded_buyer.organisation}


def assert_reported(*expected: str) -> None:
    """``invariants_check`` names exactly these problems, and ``check_ledger`` fails listing them."""
    assert invariants_check() == list(expected)
    stderr = StringIO()
    with pytest.raises(CommandError, match=rf"{len(expected)} problem\(s\) found"):
        call_command("check_ledger", stdout=StringIO(), stderr=stderr)
    assert stderr.getvalue().splitlines() == [f"- {problem}" for problem in expected]


def test_the_legs_of_the_whole_ledger_not_summing_to_zero(traded):
    leg = LedgerLeg.objects.filter(journal__trade=traded["trade"], amount_fen__gt=0).order_by("id").first()
    # Leg and cached balance moved together: only the sums give it away.
    sql("UPDATE exchange_ledgerleg SET amount_fen = amount_fen + 7 WHERE id = %s", [leg.id])
    sql("UPDATE exchange_ledgeraccount SET balance = balance + 7 WHERE id = %s", [leg.account_id])
    escrow = LedgerAccount.objects.get(organisation=traded["buyer"], kind=LedgerAccount.Kind.ESCROW)
    assert leg.account_id == escrow.id  # the trade's first credit: the escrow of what was bought
    assert_reported("all legs sum to 7, not 0", f"journal {leg.journal_id} sums to 7",
                    f"organisation {traded['buyer'].id}: escrow is {escrow.balance} fen, its unsettled allocations "
                    f"are worth {escrow.balance - 7} fen")


def test_an_unbalanced_journal_even_when_the_ledger_as_a_whole_balances(traded):
    trade_leg = LedgerLeg.objects.filter(journal__trade=traded["trade"], amount_fen__gt=0).order_by("id").first()
    deposit_leg = LedgerLeg.objects.get(journal__kind=Journal.Kind.DEPOSIT, amount_fen__gt=0)
    # 5 fen moved from one journal to another: every account and the total are still right.
    sql("UPDATE exchange_ledgerleg SET amount_fen = amount_fen + 5 WHERE id = %s", [trade_leg.id])
    sql("UPDATE exchange_ledgerleg SET amount_fen = amount_fen - 5 WHERE id = %s", [deposit_leg.id])
    sql("UPDATE exchange_ledgeraccount SET balance = balance + 5 WHERE id = %s", [trade_leg.account_id])
    sql("UPDATE exchange_ledgeraccount SET balance = balance - 5 WHERE id = %s", [deposit_leg.account_id])
    escrow = LedgerAccount.objects.get(organisation=traded["buyer"], kind=LedgerAccount.Kind.ESCROW)
    problems = sorted([f"journal {trade_leg.journal_id} sums to 5", f"journal {deposit_leg.journal_id} sums to -5",
                       # the leg moved was the escrow's: it now holds 5 fen more than was bought
                       f"organisation {traded['buyer'].id}: escrow is {escrow.balance} fen, its unsettled "
                       f"allocations are worth {escrow.balance - 5} fen"])
    assert sorted(invariants_check()) == problems
    with pytest.raises(CommandError, match=r"3 problem\(s\) found"):
        call_command("check_ledger", stdout=StringIO(), stderr=StringIO())


def test_a_cached_balance_that_differs_from_its_legs(traded):
    escrow = LedgerAccount.objects.get(organisation=traded["buyer"], kind=LedgerAccount.Kind.ESCROW)
    sql("UPDATE exchange_ledgeraccount SET balance = balance - 1 WHERE id = %s", [escrow.id])
    assert_reported(f"account {escrow.id} caches {escrow.balance - 1} but its legs sum to {escrow.balance}")


def test_an_oversold_listing_period(traded):
    period = ListingPeriod.objects.get()
    # The table's own CHECK refuses it; this net is for the day that constraint is lost.
    sql("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks pending, or the table cannot be altered
    sql("ALTER TABLE marketplace_listingperiod DROP CONSTRAINT listing_period_not_oversold")
    sql("UPDATE marketplace_listingperiod SET sold_scu_h = scu_h + 3 WHERE id = %s", [period.id])
    assert_reported(f"listing period {period.id} sold {period.scu_h + 3} of {period.scu_h} SCU·h")


def test_a_trade_without_its_journal(traded):
    trade = traded["trade"]
    # The journal (and its balanced legs) still exists, it just no longer belongs to the trade.
    sql("UPDATE exchange_journal SET trade_id = NULL WHERE trade_id = %s", [trade.id])
    assert_reported(f"trade {trade.id} lacks its trade journal")


@pytest.mark.parametrize("missing", ["part", "all"])
def test_a_trade_not_fully_allocated(traded, missing):
    trade = traded["trade"]
    if missing == "part":
        sql("UPDATE exchange_allocation SET scu_h = scu_h - 1 WHERE trade_id = %s", [trade.id])
    else:
        sql("DELETE FROM exchange_allocation WHERE trade_id = %s", [trade.id])
    allocated = trade.qty - 1 if missing == "part" else 0
    assert_reported(f"trade {trade.id} of {trade.qty} SCU·h has {allocated} SCU·h allocated",
                    f"organisation {trade.buyer_id}: escrow is {trade.qty * trade.price_fen} fen, its unsettled "
                    f"allocations are worth {allocated * trade.price_fen} fen")
    assert Allocation.objects.filter(trade=trade).count() == (1 if missing == "part" else 0)


def test_a_wrong_hold_on_one_order(traded):
    order = traded["resting"]
    # The order's hold per lot changes, its held_fen does not: the account still matches the orders.
    sql("UPDATE exchange_order SET hold_per_lot_fen = hold_per_lot_fen + 1 WHERE id = %s", [order.id])
    assert_reported(f"order {order.id}: held {order.held_fen} but {order.hold_per_lot_fen + 1} × {order.remaining} remaining")


def test_held_funds_that_no_open_bid_holds(traded):
    # A balanced, correctly cached journal: funds moved to held without any order to hold them.
    ledger.journal_post(kind=Journal.Kind.HOLD, legs=[
        (ledger.account_get(organisation=traded["buyer"], kind=LedgerAccount.Kind.AVAILABLE), -300),
        (ledger.account_get(organisation=traded["buyer"], kind=LedgerAccount.Kind.HELD), 300),
    ])
    held = traded["resting"].held_fen
    assert_reported(f"organisation {traded['buyer'].id}: held account {held + 300} but its orders hold {held}")


def test_an_order_whose_hold_vanished_from_its_held_account(traded):
    order = traded["resting"]
    sql("UPDATE exchange_order SET held_fen = 0, hold_per_lot_fen = 0 WHERE id = %s", [order.id])
    assert_reported(f"organisation {traded['buyer'].id}: held account {order.held_fen} but its orders hold 0")


@pytest.mark.django_db(transaction=True)
def test_check_ledger_as_a_process_exits_non_zero_naming_the_problem(buyer):
    import subprocess
    import sys

    from django.conf import settings

    from tests.processes import child_env

    ledger.deposit(organisation=buyer.organisation, amount_fen=500)
    command = [sys.executable, "manage.py", "check_ledger"]
    passing = subprocess.run(command, cwd=settings.BASE_DIR, env=child_env(), capture_output=True, text=True, timeout=120)
    assert passing.returncode == 0 and "All invariants hold." in passing.stdout, passing.stderr
    account = LedgerAccount.objects.get(organisation=buyer.organisation, kind=LedgerAccount.Kind.AVAILABLE)
    sql("UPDATE exchange_ledgeraccount SET balance = 499 WHERE id = %s", [account.id])
    failing = subprocess.run(command, cwd=settings.BASE_DIR, env=child_env(), capture_output=True, text=True, timeout=120)
    assert failing.returncode == 1
    assert f"- account {account.id} caches 499 but its legs sum to 500" in failing.stderr
    assert "1 problem(s) found" in failing.stderr
