"""Statements: the page and the CSV reconcile with the ledger, for each party to a settled trade."""

from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.db.models import F
from django.test import AsyncRequestFactory, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from accounts.access import actor_from_user
from exchange import ledger
from exchange.models import LedgerAccount
from marketplace.models import AssetOwnership
from marketplace.periods import china_today
from settlement.models import Payout, Settlement
from settlement.services import metering_report
from settlement import statement_views
from settlement.statement_views import period_from_params, statement_csv
from settlement.statements import ACCOUNT_KINDS, statement_build
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import MembershipFactory
from tests.settlement.conftest import Market, allocation_of

pytestmark = pytest.mark.django_db

K = LedgerAccount.Kind
PAGE, CSV = "/settlement/statements/", "/settlement/statements.csv"


def around_now() -> dict:
    """A period holding the trade (now) and its settlement (stamped a day ahead by market.settle)."""
    today = china_today(timezone.now())
    return {"from": str(today - timedelta(days=2)), "to": str(today + timedelta(days=2))}


def signed_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def settle_one(market, seller, holder, owner, *, qty=100, delivered="98"):
    """``seller`` sells ``qty`` SCU·h at 20.00 to ``holder`` from an asset it owns 60/40 with
    ``owner``; ``delivered`` device-hours are metered, then it settles."""
    trade = market.trade(seller, holder, qty, "20.00")
    allocation = allocation_of(trade)
    market.end_window()
    asset = allocation.listing_period.listing.asset
    since = market.instrument.delivery_start - timedelta(days=1)
    if not AssetOwnership.objects.filter(asset=asset).exists():
        AssetOwnership.objects.bulk_create([
            AssetOwnership(asset=asset, organisation=seller.organisation, share_bp=6000, effective_from=since),
            AssetOwnership(asset=asset, organisation=owner.organisation, share_bp=4000, effective_from=since)])
    if delivered:
        metering_report(actor=actor_from_user(seller.user), allocation_id=allocation.id, device_hours=delivered,
                        now=market.during)
    assert market.settle() == 1
    return SimpleNamespace(trade=trade, allocation=allocation, settlement=Settlement.objects.get(pk=allocation.pk))


@pytest.fixture
def owner():
    return MembershipFactory(organisation__kind="provider", role="provider_admin")


@pytest.fixture
def settled(market, seller, holder, owner):
    return settle_one(market, seller, holder, owner)


def page(membership, **params):
    response = signed_in(membership).get(PAGE, {**around_now(), **params})
    assert response.status_code == 200, response.content[:500]
    return response, response.context["statement"]


def download(membership, **params) -> tuple[list[list[str]], object]:
    response = signed_in(membership).get(CSV, {**around_now(), **params})
    assert response.status_code == 200
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    response.raw = b"".join(response.streaming_content)
    return list(csv.reader(io.StringIO(response.raw.decode("utf-8-sig")))), response


def balances_now(organisation) -> dict[str, int]:
    found = dict(LedgerAccount.objects.filter(organisation=organisation).values_list("kind", "balance"))
    return {k: found.get(k, 0) for k in ACCOUNT_KINDS}


def assert_reconciles(statement, organisation):
    """opening + movements = closing (summed separately from the legs), closing = the cached
    ledger balance for a period that ends after everything, and the records agree."""
    for row in statement.ledger.rows:
        assert row["opening"] + row["movements"] == row["closing"], row
        assert row["since"] == 0, row
    assert statement.ledger.closing == balances_now(organisation)
    assert [c.label for c in statement.checks if not c.ok] == []
    assert statement.reconciles


def test_each_party_reconciles_and_sees_its_part(settled, seller, holder, owner):
    s = settled.settlement
    assert (s.delivered_scu_h, s.refund_fen, s.sla_credit_fen, s.fee_fen) == (98, 4000, 50000, 40)

    response, statement = page(holder)
    assert_reconciles(statement, holder.organisation)
    body = response.content.decode()
    assert 'id="reconciliation"' in body and "Reconciles with the ledger" in body
    totals = statement.settlements["totals"]
    assert (totals["held"], totals["refund"], totals["credit"], totals["held_paid"]) == (1, 4000, 50000, 196000)
    assert statement.trade_totals["bought_value"] == 200000 and statement.trade_totals["fees"] == 100
    assert statement.ledger.closing[K.ESCROW] == 0
    assert statement.ledger.moved("refund", K.AVAILABLE) == 4000
    assert statement.ledger.moved("sla_credit", K.AVAILABLE) == 50000
    assert '<th class="num" id="refund-total">40.00</th>' in body
    assert '<th class="num" id="credit-total">500.00</th>' in body

    _, statement = page(seller)
    assert_reconciles(statement, seller.organisation)
    per_owner = {row["organisation_id"]: row["amount"] for row in statement.payouts["per_owner"]}
    # 196,000 paid − 40 fee − 50,000 SLA credit = 145,960, split 60/40.
    assert per_owner == {seller.organisation_id: 87576, owner.organisation_id: 58384}
    assert statement.payouts["per_owner_total"] == statement.settlements["totals"]["payout"] == 145960
    assert statement.payouts["received_totals"]["amount"] == 87576
    assert statement.settlements["totals"]["credit_given"] == 50000

    response, statement = page(owner)
    assert_reconciles(statement, owner.organisation)
    assert [(r["allocation"], r["share"], r["amount"]) for r in statement.payouts["received"]] == [
        (settled.allocation.id, "40.00 %", 58384)]
    assert statement.ledger.closing[K.AVAILABLE] == 58384
    assert statement.payouts["per_owner"] == []
    assert 'id="received-total">583.84<' in response.content.decode()


def test_the_csv_lists_every_line_and_its_totals_equal_the_page(settled, seller, holder, owner):
    for member in (holder, seller, owner):
        _, statement = page(member)
        rows, response = download(member)
        assert response["Content-Disposition"].startswith("attachment; filename=")
        header, opening, *lines, total, closing = rows
        assert header[-6:] == list(ACCOUNT_KINDS)
        assert (opening[1], total[1], closing[1]) == ("opening", "total", "closing")

        def fen(cells) -> list[int]:
            return [int(Decimal(c or "0") * 100) for c in cells[-6:]]

        assert fen(opening) == [statement.ledger.opening[k] for k in ACCOUNT_KINDS]
        assert fen(total) == [statement.ledger.total[k] for k in ACCOUNT_KINDS]
        assert fen(closing) == [statement.ledger.closing[k] for k in ACCOUNT_KINDS]
        assert [sum(column) for column in zip(*(fen(line) for line in lines))] == fen(total)
        assert len(lines) == sum(m.journals for m in statement.ledger.movements)
        assert all(line[0][:2] == "20" and len(line[0]) == 19 for line in lines)  # China-time stamps
    rows, _ = download(seller)
    payout = next(line for line in rows if line[1] == "payout")
    assert payout[4] == str(settled.allocation.id)
    assert f"{owner.organisation.name} 583.84 (40.00 %)" in payout[6]
    assert f"{seller.organisation.name} 875.76 (60.00 %)" in payout[6]
    rows, _ = download(holder)
    trade = next(line for line in rows if line[1] == "trade")
    assert trade[3] == str(settled.trade.id)
    assert trade[6] == f"Bought 100 SCU·h of {settled.trade.instrument.code} at 20.00"
    assert [line[1] for line in rows if line[1] in ("refund", "sla_credit")] == ["refund", "sla_credit"]


def test_a_period_before_the_trade_carries_it_as_movements_since(settled, holder):
    today = china_today(timezone.now())
    _, statement = page(holder, **{"from": str(today - timedelta(days=5)), "to": str(today - timedelta(days=3))})
    assert statement.ledger.movements == []
    assert all(row["opening"] == row["closing"] == 0 for row in statement.ledger.rows)
    assert {row["kind"]: row["since"] for row in statement.ledger.rows} == balances_now(holder.organisation)
    assert statement.reconciles


def test_a_seller_short_of_funds_shows_its_debt_and_the_holder_its_credit(market, seller, holder, owner):
    settle_one(market, seller, holder, owner, delivered=None)  # nothing delivered: full refund, 100 % credit
    _, statement = page(seller)
    assert_reconciles(statement, seller.organisation)
    debts = statement.debts["totals"]
    assert debts["recorded_owes"] == debts["outstanding_owes"] == 200000 + 40  # the credit, and the fee
    assert {(d.creditor_id, d.outstanding_fen) for d in statement.debts["outstanding"]} == {
        (holder.organisation_id, 200000), (None, 40)}
    _, statement = page(holder)
    assert_reconciles(statement, holder.organisation)
    assert statement.debts["totals"]["outstanding_owed"] == statement.ledger.closing[K.RECEIVABLE] == 200000


def test_a_ledger_that_disagrees_is_shown_not_hidden(settled, holder, owner):
    LedgerAccount.objects.filter(organisation=holder.organisation, kind=K.AVAILABLE).update(balance=F("balance") + 1)
    response, statement = page(holder)
    assert not statement.reconciles
    row = next(r for r in statement.ledger.rows if r["kind"] == K.AVAILABLE)
    assert (row["period_off"], row["ledger_off"]) == (0, -1)
    assert "Does not reconcile" in response.content.decode()

    Payout.objects.filter(organisation=owner.organisation).update(amount_fen=F("amount_fen") - 1)
    _, statement = page(owner)
    assert [c.label for c in statement.checks if not c.ok] == ["Payouts received as an owner"]
    assert not statement.reconciles


def test_who_may_read_a_statement(settled, holder, seller, regulator):
    other = MembershipFactory(organisation__kind="buyer", role="trader")
    target = {"organisation": holder.organisation_id}
    for url in (PAGE, CSV):
        assert signed_in(other).get(url, {**around_now(), **target}).status_code == 404
        assert signed_in(seller).get(url, {**around_now(), **target}).status_code == 404
        assert Client().get(url, target).status_code == 302
        assert signed_in(regulator).get(url, {**around_now(), "organisation": 10**12}).status_code == 404
    _, statement = page(other)
    assert statement.organisation == other.organisation and statement.ledger.movements == []
    viewer = MembershipFactory(organisation=holder.organisation, role="viewer")
    _, statement = page(viewer)
    assert statement.organisation == holder.organisation and statement.trade_totals["bought"] == 1

    response, statement = page(regulator, **target)
    assert statement.organisation == holder.organisation
    assert_reconciles(statement, holder.organisation)
    assert f"organisation={holder.organisation_id}" in response.context["links"]["csv"]
    rows, _ = download(regulator, **target)
    assert rows[-1][1] == "closing"


@pytest.mark.parametrize("params, field", [
    ({"from": "2026-03-10", "to": "2026-03-01"}, "to"),
    ({"from": "yesterday", "to": "2026-03-01"}, "from"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
    ({"from": "2026-03-01"}, "to"),
    ({"from": "9999-12-31", "to": "9999-12-31"}, "from"),
    ({"period": "year"}, "period"),
    ({"period": "week", "on": "2000-01-01"}, "on"),
    ({"period": "day", "on": "0001-01-01"}, "on"),
])
def test_bad_periods_are_refused_with_a_message(holder, params, field):
    client = signed_in(holder)
    response = client.get(PAGE, params)
    assert response.status_code == 400
    assert response.context["error"].fields.keys() == {field}
    assert 'id="period-error"' in response.content.decode()
    response = client.get(CSV, params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_period" and field in response.json()["fields"]


def test_a_bad_organisation_is_refused(holder, regulator):
    # "²" passes str.isdigit() but not int(); 5,000 digits are past what int() reads.
    for member in (holder, regulator):
        for bad in ("abc", "-1", "\u00b2", "9" * 5000):
            assert signed_in(member).get(PAGE, {"organisation": bad}).status_code == 400
            assert signed_in(member).get(CSV, {"organisation": bad}).status_code == 400


def test_presets_and_the_default_month(settled, holder):
    today = china_today(timezone.now())
    _, statement = page(holder, **{"from": "", "to": ""})
    assert (statement.period.preset, statement.period.first_day) == ("month", today.replace(day=1))
    _, statement = page(holder, **{"from": "", "to": "", "period": "week", "on": str(today)})
    first, last = statement.period.first_day, statement.period.last_day
    assert first.weekday() == 0 and (last - first).days == 6
    assert first <= today <= last
    response, statement = page(holder, **{"from": "", "to": "", "period": "day", "on": str(today)})
    assert statement.period.first_day == statement.period.last_day == today
    assert statement.trade_totals["bought"] == 1  # traded today
    assert statement.reconciles
    assert response.context["links"]["next"] == f"?period=day&on={today + timedelta(days=1)}"


def test_the_page_in_chinese(settled, holder):
    response = signed_in(holder).get(PAGE, around_now(), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert "与账本核对一致" in response.content.decode()


def test_the_csv_streams_under_asgi(settled, holder):
    """Served over ASGI, the CSV is an asynchronous iterator read piece by piece (Django would
    read a synchronous one whole before sending)."""
    request = AsyncRequestFactory().get(CSV, around_now())
    request.user = holder.user
    with translation.override("en"):  # no LocaleMiddleware here: the language the test client gets
        response = statement_csv(request)
    assert response.is_async

    async def pieces():
        return [piece async for piece in response.streaming_content]

    streamed = async_to_sync(pieces)()
    assert len(streamed) >= 3  # header, the lines, the totals
    _, synchronous = download(holder)
    assert b"".join(streamed) == synchronous.raw


def test_the_page_reads_a_fixed_number_of_queries(market, seller, holder, owner, monkeypatch):
    settle_one(market, seller, holder, owner)
    client = signed_in(seller)
    with CaptureQueriesContext(connection) as first:
        assert client.get(PAGE, around_now()).status_code == 200
    # More of everything: a second settled trade (undelivered: refund, credit, debts), deposits.
    second = Market(make_instrument(days_ahead=3))
    list_capacity(organisation=seller.organisation, instrument=second.instrument, scu_h=1000)
    trade = second.trade(seller, holder, 50, "21.00")
    second.end_window(hours_ago=2)
    assert second.settle() == 1 and allocation_of(trade).settled_at is not None
    for _ in range(3):
        ledger.deposit(organisation=seller.organisation, amount_fen=100, memo="top-up")
    with CaptureQueriesContext(connection) as second_read:
        response = client.get(PAGE, around_now())
    statement = response.context["statement"]
    assert statement.settlements["totals"]["sold"] == 2 and len(statement.funds) == 3
    assert_reconciles(statement, seller.organisation)
    assert len(second_read) == len(first) <= 16, [q["sql"][:120] for q in second_read.captured_queries]

    # The tables are capped; the totals are not.
    monkeypatch.setattr(statement_views, "DETAIL_LIMIT", 1)
    response = client.get(PAGE, around_now())
    statement = response.context["statement"]
    assert len(statement.settlements["sold"]) == 1 and statement.settlements["totals"]["sold"] == 2
    body = response.content.decode()
    assert body.count("The latest 1 are shown") == 3  # trades, deliveries sold, deposits
    assert "The oldest 1 are shown" in body  # the SLA credit and the fee it could not pay


def test_outside_a_transaction_the_reads_share_one_snapshot(holder):
    """In production no transaction surrounds the request: the statement's reads then run in
    one repeatable-read transaction. (On a connection of its own, so outside the test's
    transaction; it sees none of the test's rows, only how it reads.)"""
    result = {}

    def read():
        try:
            with CaptureQueriesContext(connection) as queries:
                result["statement"] = statement_build(organisation=holder.organisation, period=period_from_params(
                    around_now(), today=china_today(timezone.now())))
            result["sql"] = [q["sql"] for q in queries.captured_queries]
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert result["sql"][:2] == ["BEGIN", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"]
    assert result["sql"][-1] == "COMMIT"
    assert result["statement"].reconciles and result["statement"].ledger.movements == []
