"""The demo settles by itself: in demo mode the demo class trades minutes-long windows, and
the simulator's providers deliver and meter while its buyers confirm access. Time is
compressed: every step is given its ``now``, nothing waits for the clock."""

import io
import logging
import re
from datetime import timedelta
from importlib import import_module

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.access import actor_from_user
from accounts.models import Membership
from exchange.errors import AppError
from exchange.instruments import instruments_list
from exchange.invariants import invariants_check
from exchange.models import Allocation, Instrument, Journal, Order
from exchange.simulation import MarketSimulator
from marketplace.demo import demo_listings_extend
from marketplace.models import ComputeClass, Listing, ListingPeriod, ProvenanceEvent
from marketplace.periods import DEMO_CLASS_CODE, class_period
from settlement import services
from settlement.models import Delivery, MeterReport, Payout, Settlement, SlaCreditStep
from settlement.runner import settle
from settlement.selectors import delivery_credentials
from tests.settlement.conftest import Market

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


@pytest.fixture
def demo(settings):
    settings.DEMO_MODE = True
    settings.DEMO_PERIOD_MINUTES = 5
    settings.DEMO_GATE_CLOSURE_SECONDS = 60
    settings.DEMO_OPENING_AUCTION_SECONDS = 20
    settings.DEMO_HORIZON_MINUTES = 60
    settings.DISPUTE_WINDOW_SECONDS = 60
    # The published SLA schedule, which a transactional test run before this one may have emptied.
    for below_bp, credit_bp in import_module("settlement.migrations.0002_sla_schedule").DEFAULT_STEPS:
        SlaCreditStep.objects.get_or_create(below_bp=below_bp, defaults={"credit_bp": credit_bp})
    seeded_at = timezone.now()
    call_command("seed_demo", stdout=io.StringIO())
    return seeded_at


def member(email: str) -> Membership:
    return Membership.objects.select_related("organisation", "user").get(user__email=email)


def demo_instruments():
    return Instrument.objects.filter(compute_class__code=DEMO_CLASS_CODE).select_related("hub").order_by(
        "delivery_start", "hub__code")


def test_demo_mode_lists_the_demo_class_in_five_minute_windows_where_demo_capacity_is(demo, client):
    seeded_at, now = demo, timezone.now()
    instruments = list(demo_instruments())
    assert instruments
    for instrument in instruments:
        assert re.fullmatch(r"DEMO\.(NX|GS)\.\d{4}-\d\d-\d\dT\d{4}", instrument.code), instrument.code
        assert instrument.delivery_end - instrument.delivery_start == 5 * MINUTE
        assert instrument.gate_closure_at == instrument.delivery_start - MINUTE
        assert seeded_at < instrument.gate_closure_at and instrument.delivery_start < now + 60 * MINUTE
        assert seeded_at + timedelta(seconds=20) <= instrument.auction_ends_at <= now + timedelta(seconds=20)
    assert {i.hub.code for i in instruments} == {"NX", "GS"}  # the two assets that list in it
    # Capacity behind them: 192 A80 × 5 min × 0.8 and 512 HX-910 × 5 min × 0.6, whole SCU·h.
    periods = ListingPeriod.objects.filter(compute_class__code=DEMO_CLASS_CODE)
    assert set(periods.values_list("hub__code", "scu_h")) == {("NX", 12), ("GS", 25)}
    starts = set(periods.values_list("period_start", flat=True))
    assert {i.delivery_start for i in instruments} <= starts

    # The real classes keep their days and their two-hour gate closure.
    ai80 = Instrument.objects.filter(compute_class__code="AI80").first()
    assert ai80.delivery_end - ai80.delivery_start == timedelta(days=1)
    assert ai80.delivery_start - ai80.gate_closure_at == timedelta(hours=2)

    counts = (Instrument.objects.count(), Listing.objects.count(), ListingPeriod.objects.count())
    call_command("seed_demo", stdout=io.StringIO())
    assert (Instrument.objects.count(), Listing.objects.count(), ListingPeriod.objects.count()) == counts

    # The pages say how long the windows are.
    first = instruments[0]
    window = f"{timezone.localtime(first.delivery_start):%H:%M}–{timezone.localtime(first.delivery_end):%H:%M}"
    assert window in client.get(f"/markets/?class={DEMO_CLASS_CODE}").content.decode()
    assert "<td class=\"num\">5 min</td>" in client.get("/capacity/catalogue/").content.decode()

    # The simulator quotes the soonest of them every round, in small sizes.
    simulator = MarketSimulator(seed=3)
    demo_quoted, _ = simulator._instruments()
    assert [i.code for i in demo_quoted] == [i.code for i in instruments[:4]]
    assert simulator.tick() > 0
    quoted = Order.objects.filter(instrument__compute_class__code=DEMO_CLASS_CODE)
    assert quoted.exists() and max(quoted.values_list("qty", flat=True)) <= 5


def test_outside_demo_mode_the_demo_class_is_neither_short_nor_listed(demo, settings):
    settings.DEMO_MODE = False
    demo_class = ComputeClass.objects.get(code=DEMO_CLASS_CODE)
    assert class_period(demo_class) == timedelta(hours=1)
    assert class_period(ComputeClass.objects.get(code="AI80")) == timedelta(days=1)
    before = demo_instruments().count()
    instruments_list(now=timezone.now() + timedelta(minutes=30))
    assert demo_instruments().count() == before
    assert demo_listings_extend(now=timezone.now() + timedelta(hours=5)) == 0


def test_the_simulator_keeps_the_demo_class_listed_ahead(demo):
    now = timezone.now()
    assert demo_listings_extend(now=now) == 0  # seeded six hours ahead
    later = now + timedelta(hours=4)
    assert demo_listings_extend(now=later) == 2  # one more listing per asset
    assert demo_listings_extend(now=later) == 0
    for asset_name in ("Zhongwei Hall A", "Qingyang East Campus"):
        first, second = Listing.objects.filter(compute_class__code=DEMO_CLASS_CODE, asset__name=asset_name).order_by("id")
        assert second.window_start == first.window_end  # contiguous, no period listed twice


def traded(*, buyers=("buyer@lingyun.example", "buyer@huaxin.example"), qty=10):
    """Trades in the soonest GS demo instrument still open for a while (Qingyang East Campus:
    three co-owners)."""
    instrument = demo_instruments().filter(hub__code="GS", gate_closure_at__gt=timezone.now() + MINUTE).first()
    Instrument.objects.filter(pk=instrument.pk).update(state=Instrument.State.CONTINUOUS, reference_price_fen=2000)
    instrument.refresh_from_db()
    market = Market(instrument)
    seller = member("ops@qingyang-green.example")
    trades = [market.trade(seller, member(email), qty, "20.00") for email in buyers]
    allocations = list(Allocation.objects.filter(trade__in=trades).order_by("id"))
    assert [a.scu_h for a in allocations] == [qty] * len(buyers)
    return instrument, allocations


def test_a_demo_trade_is_delivered_metered_and_settled_with_payouts_and_an_sla_credit(demo):
    instrument, allocations = traded()
    start, end = instrument.delivery_start, instrument.delivery_end
    # Every second allocation falls short, so that of these two consecutive ones, one does.
    simulator = MarketSimulator(seed=1, shortfall_every=2)
    short = next(a for a in allocations if a.id % 2 == 0)
    whole = next(a for a in allocations if a.id % 2 == 1)

    assert simulator.after_trade(now=start - timedelta(seconds=1)) == {}  # the window has not started
    assert simulator.after_trade(now=start + timedelta(seconds=1)) == {"started": 2}
    for allocation in allocations:
        holder = actor_from_user(Membership.objects.get(organisation_id=allocation.holder_id).user)
        assert delivery_credentials(actor=holder, allocation=allocation).startswith(f"user: demo-{allocation.id}\n")
    assert simulator.after_trade(now=start + 2 * MINUTE) == {"confirmed": 2}
    assert set(Delivery.objects.values_list("state", flat=True)) == {Delivery.State.CONFIRMED}
    assert simulator.after_trade(now=start + 3 * MINUTE) == {"metered": 2}  # half, at mid-window
    assert simulator.after_trade(now=end + timedelta(seconds=1)) == {"metered": 2}  # the rest
    assert simulator.after_trade(now=end + timedelta(seconds=2)) == {}
    assert MeterReport.objects.count() == 4

    assert settle(now=end + timedelta(seconds=30)) == 0  # the dispute window (60 s) is still open
    assert settle(now=end + timedelta(seconds=61)) == 2
    assert invariants_check() == []

    full = Settlement.objects.get(allocation=whole)
    assert (full.delivered_scu_h, full.refunded_scu_h, full.sla_credit_fen) == (10, 0, 0)
    payouts = dict(Payout.objects.filter(settlement=full).values_list("organisation__name", "share_bp"))
    assert payouts == {"Qingyang Green Compute": 5000, "West Hub Computing (Ningxia)": 3000,
                       "Gui'an Cloud Valley Data Centre": 2000}
    assert sum(Payout.objects.filter(settlement=full).values_list("amount_fen", flat=True)) == full.payout_fen > 0

    shortfall = Settlement.objects.get(allocation=short)
    assert (shortfall.delivered_scu_h, shortfall.refunded_scu_h) == (9, 1)  # 97 % or 90 % of 10, at least 1 short
    assert shortfall.sla_credit_bp == 10000 and shortfall.sla_credit_fen == 10 * 2000  # 90 % is below 95 %
    assert Journal.objects.filter(allocation=short, kind=Journal.Kind.SLA_CREDIT).exists()
    assert Journal.objects.filter(allocation=short, kind=Journal.Kind.REFUND).exists()
    kinds = set(ProvenanceEvent.objects.values_list("kind", flat=True))
    assert {"capacity_delivered", "capacity_settled"} <= kinds

    assert simulator.after_trade(now=end + timedelta(seconds=62)) == {}  # settled: nothing left to do


def test_the_simulator_logs_a_refused_or_failed_step_and_goes_on_with_the_others(demo, monkeypatch, caplog):
    instrument, allocations = traded()
    real_start, calls = services.delivery_start, []

    def start_refusing_then_failing(**kwargs):
        calls.append(kwargs["allocation_id"])
        if len(calls) == 1:
            raise AppError("outside_window", "refused for the test")
        if len(calls) == 2:
            raise RuntimeError("broken for the test")
        return real_start(**kwargs)

    monkeypatch.setattr(services, "delivery_start", start_refusing_then_failing)
    simulator = MarketSimulator(seed=1)
    now = instrument.delivery_start + timedelta(seconds=1)
    with caplog.at_level(logging.INFO, logger="settlement.simulation"):
        assert simulator.after_trade(now=now) == {"refused": 1, "failed": 1}
        assert simulator.after_trade(now=now) == {"started": 2}  # both tried again on the next step
    assert any("refused: outside_window" in r.getMessage() for r in caplog.records)
    assert any("broken for the test" in (r.exc_text or "") for r in caplog.records)
    assert Delivery.objects.count() == 2


def test_allocations_with_nothing_to_do_do_not_crowd_out_the_others(demo):
    """A step takes only allocations that need an action, so a small batch still reaches them all."""
    instrument, (first, second) = traded()
    simulator = MarketSimulator(seed=1, shortfall_every=0)
    simulator.deliveries.batch_size = 1
    now = instrument.delivery_start + timedelta(seconds=1)
    steps = [simulator.after_trade(now=now) for _ in range(5)]
    assert steps == [{"started": 1}, {"confirmed": 1}, {"started": 1}, {"confirmed": 1}, {}]
    assert set(Delivery.objects.values_list("allocation_id", "state")) == {
        (first.id, Delivery.State.CONFIRMED), (second.id, Delivery.State.CONFIRMED)}
