"""Metering refused with a code: beyond the allocation, for another provider's allocation, outside
the window; and a CSV whose bad rows are refused one by one while the good ones are reported."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings

from accounts.access import actor_from_user
from exchange import ledger
from exchange.errors import AppError
from settlement.models import MeterReport, Settlement
from settlement.services import metering_import, metering_report
from tests.exchange.conftest import list_capacity
from tests.factories import MembershipFactory
from tests.settlement.conftest import allocation_of

pytestmark = pytest.mark.django_db



@pytest.fixture
def other_provider(market):
    membership = MembershipFactory(organisation__kind="provider", role="provider_admin")
    list_capacity(organisation=membership.organisation, instrument=market.instrument, scu_h=1000)
    return membership


def refused(code: str, **kwargs) -> str:
    with pytest.raises(AppError) as err:
        metering_report(**kwargs)
    assert err.value.code == code, err.value.detail
    return err.value.detail


def test_metering_beyond_the_allocation_is_refused_and_nothing_is_written(market, seller, holder):
    allocation = allocation_of(market.trade(seller, holder, 100, "20.00"))
    actor = actor_from_user(seller.user)
    refused("beyond_allocation", actor=actor, allocation_id=allocation.id, device_hours="100.0001", now=market.during)
    metering_report(actor=actor, allocation_id=allocation.id, device_hours="60", now=market.during)
    # Reports add up: 60 + 41 is beyond 100.
    detail = refused("beyond_allocation", actor=actor, allocation_id=allocation.id, device_hours="41",
                     now=market.during)
    assert "101" in detail
    metering_report(actor=actor, allocation_id=allocation.id, device_hours="40", now=market.during)
    assert sum(MeterReport.objects.values_list("device_hours", flat=True)) == Decimal(100)
    refused("beyond_allocation", actor=actor, allocation_id=allocation.id, device_hours="0.0001", now=market.during)


def test_a_factor_converts_device_hours_and_bounds_them(market, provider, holder):
    """At 1.25 SCU·h per device-hour, 100 SCU·h are 80 device-hours."""
    list_capacity(organisation=provider.organisation, instrument=market.instrument, scu_h=1000,
                  factor=Decimal("1.2500"))
    allocation = allocation_of(market.trade(provider, holder, 100, "20.00"))
    assert allocation.device_hours == Decimal(80)
    actor = actor_from_user(provider.user)
    refused("beyond_allocation", actor=actor, allocation_id=allocation.id, device_hours="81", now=market.during)
    metering_report(actor=actor, allocation_id=allocation.id, device_hours="76", now=market.during)
    assert market.settle() == 1
    # 76 × 1.25 = 95 SCU·h: exactly 95 %, credit 25 %.
    s = Settlement.objects.get()
    assert (s.delivered_scu_h, s.sla_credit_bp) == (95, 2500)


def test_another_providers_allocation_is_not_found_and_a_holder_may_not_meter(market, seller, holder, other_provider):
    mine = allocation_of(market.trade(seller, holder, 10, "20.00"))
    theirs = allocation_of(market.trade(other_provider, holder, 10, "20.00"))
    # Another provider's allocation is none of this provider's business: as if it did not exist.
    refused("allocation_not_found", actor=actor_from_user(seller.user), allocation_id=theirs.id, device_hours="1",
            now=market.during)
    refused("allocation_not_found", actor=actor_from_user(other_provider.user), allocation_id=mine.id,
            device_hours="1", now=market.during)
    # A provider holding capacity it bought from another does not deliver it.
    ledger.deposit(organisation=other_provider.organisation, amount_fen=1_000_000)
    bought = allocation_of(market.trade(seller, other_provider, 5, "20.00"))
    refused("not_the_provider", actor=actor_from_user(other_provider.user), allocation_id=bought.id,
            device_hours="1", now=market.during)
    # The holder (a trader) has no provide scope.
    refused("scope_missing", actor=actor_from_user(holder.user), allocation_id=mine.id, device_hours="1",
            now=market.during)
    assert not MeterReport.objects.exists()


def test_metering_outside_the_window_is_refused(market, seller, holder):
    allocation = allocation_of(market.trade(seller, holder, 10, "20.00"))
    actor = actor_from_user(seller.user)
    start, end = market.instrument.delivery_start, market.instrument.delivery_end
    last = end + timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS)
    refused("outside_window", actor=actor, allocation_id=allocation.id, device_hours="1",
            now=start - timedelta(seconds=1))
    refused("outside_window", actor=actor, allocation_id=allocation.id, device_hours="1",
            now=last + timedelta(seconds=1))
    # The first and the last moment are in.
    metering_report(actor=actor, allocation_id=allocation.id, device_hours="1", now=start)
    metering_report(actor=actor, allocation_id=allocation.id, device_hours="1", now=last)
    assert MeterReport.objects.count() == 2


def test_a_settled_allocation_takes_no_more_metering(market, seller, holder):
    allocation = allocation_of(market.trade(seller, holder, 10, "20.00"))
    market.end_window()
    assert market.settle() == 1
    refused("allocation_settled", actor=actor_from_user(seller.user), allocation_id=allocation.id,
            device_hours="1", now=market.during)


def test_a_csv_refuses_each_bad_row_with_its_code_and_reports_the_good_ones(market, seller, holder, other_provider):
    mine = allocation_of(market.trade(seller, holder, 100, "20.00"))
    theirs = allocation_of(market.trade(other_provider, holder, 10, "20.00"))
    a, b = mine.id, theirs.id
    market.end_window()  # an upload is metered now: the window ended an hour ago
    text = (
        "allocation_id,device_hours,note\n"
        f"{a},60,first shift\n"            # 1 good
        "abc,5,\n"                         # 2 not an id
        f"{a},ten,\n"                      # 3 not a number
        f"{a},1.00001,\n"                  # 4 five decimals
        f"{a},41,\n"                       # 5 60 + 41 beyond 100
        f"{b},5,\n"                        # 6 another provider's
        "\n"                               #   a blank line is not a row
        f"{a},-3,\n"                       # 7 negative
        "999999999,1,\n"                   # 8 no such allocation
        f"{a}\n"                           # 9 no device-hours
        f" {a} , 39.5 ,second shift\n"     # 10 good (cells are trimmed)
    )
    seen = []
    results = metering_import(actor=actor_from_user(seller.user), text=text,
                              progress=lambda done, total: seen.append((done, total)))
    assert [(r["row"], r["ok"], r.get("code")) for r in results] == [
        (1, True, None), (2, False, "invalid"), (3, False, "invalid"), (4, False, "invalid"),
        (5, False, "beyond_allocation"), (6, False, "allocation_not_found"), (7, False, "invalid"),
        (8, False, "allocation_not_found"), (9, False, "invalid"), (10, True, None),
    ]
    assert all(r["detail"] for r in results if not r["ok"])
    assert "four decimal places" in results[3]["detail"]
    assert seen[-1] == (10, 10) and len(seen) == 10
    reports = list(MeterReport.objects.order_by("id").values_list("allocation_id", "device_hours", "source", "note"))
    assert reports == [(a, Decimal("60"), "csv", "first shift"), (a, Decimal("39.5"), "csv", "second shift")]
    assert [r["report_id"] for r in results if r["ok"]] == list(MeterReport.objects.order_by("id")
                                                                .values_list("id", flat=True))
    # 99.5 device-hours at factor 1: 99.5 SCU·h rounds half up to 100; the other allocation got nothing.
    assert market.settle() == 2
    assert dict(Settlement.objects.values_list("allocation_id", "delivered_scu_h")) == {a: 100, b: 0}


def test_a_csv_with_a_wrong_header_is_refused_whole(market, seller, holder):
    allocation = allocation_of(market.trade(seller, holder, 10, "20.00"))
    market.end_window()
    with pytest.raises(AppError) as err:
        metering_import(actor=actor_from_user(seller.user), text=f"device_hours,allocation_id\n1,{allocation.id}\n")
    assert err.value.code == "invalid" and "file" in err.value.fields
    assert not MeterReport.objects.exists()


def test_a_large_csv_costs_a_few_statements_not_a_few_per_row(market, seller, holder, django_assert_max_num_queries):
    allocations = [allocation_of(market.trade(seller, holder, 10, "20.00")) for _ in range(5)]
    market.end_window()
    # 500 rows over five allocations, 0.01 device-hours each: 1 device-hour per allocation.
    text = "allocation_id,device_hours\n" + "".join(f"{allocations[n % 5].id},0.01\n" for n in range(500))
    with django_assert_max_num_queries(15):
        results = metering_import(actor=actor_from_user(seller.user), text=text)
    assert all(r["ok"] for r in results) and len(results) == 500
    assert {a.id: total for a, total in zip(allocations, [Decimal("1.00")] * 5)} == {
        a.id: sum(MeterReport.objects.filter(allocation=a).values_list("device_hours", flat=True)) for a in allocations}


def test_a_file_that_is_not_csv_is_refused_whole(market, seller):
    with pytest.raises(AppError) as refusal:
        metering_import(actor=actor_from_user(seller.user), text="allocation_id,device_hours\n1,2\r3\n")
    assert refusal.value.code == "invalid" and MeterReport.objects.count() == 0


def test_a_row_with_a_nul_character_is_refused_on_its_own(market, seller, holder):
    allocation = allocation_of(market.trade(seller, holder, 10, "20.00"))
    market.end_window()
    results = metering_import(actor=actor_from_user(seller.user),
                              text=f"allocation_id,device_hours,note\n{allocation.id},1,bad\x00note\n{allocation.id},2,ok\n")
    assert [(r["ok"], r.get("code")) for r in results] == [(False, "invalid"), (True, None)]
    assert MeterReport.objects.get().device_hours == 2
