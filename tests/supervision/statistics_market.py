"""A small market that traded, delivered and settled, for the statistics tests.

Two instruments of AI80 deliver on the same day D: one in hub NX, one in YRD. Two providers:
P1 (asset 80.00 % green) lists 1,000 SCU·h in NX; P2 (asset 30.50 % green) lists 500 in NX
and 400 in YRD. Trades, all today (China time):

    t1  P1 → B1  100 @ 20.00  NX   metered 80 on B1's own part (B1 resold 20)
    t2  P2 → B2   50 @ 21.00  NX   metered 45                    (a shortfall)
    t3  P1 → B2   30 @ 19.50  NX   metered 30, disputed, adjusted to 24
    t4  P2 → B1   40 @ 25.00  YRD  never metered                 (nothing delivered)
    t5  B1 → B3   20 @ 22.00  NX   a resale of t1's capacity, metered 20

Then the delivery window is moved into the past and everything settles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from accounts.access import actor_from_user
from accounts.models import Membership
from exchange.engine import EngineRunner
from exchange.invariants import invariants_check
from exchange.models import Allocation, Instrument, Trade
from marketplace.models import ComputeAsset, ListingPeriod
from settlement.runner import settle
from settlement.services import dispute_open, dispute_resolve, metering_report
from tests.exchange.conftest import drain, list_capacity, make_instrument
from tests.settlement.conftest import funded, place


@dataclass
class StatisticsMarket:
    nx: Instrument
    yrd: Instrument
    members: dict[str, Membership]
    trades: dict[str, Trade] = field(default_factory=dict)
    runner: EngineRunner | None = None

    def trade(self, name: str, instrument: Instrument, seller: str, buyer: str, qty: int, price: str) -> Trade:
        before = set(Trade.objects.values_list("id", flat=True))
        place(self.members[seller], instrument, "sell", price, qty)
        place(self.members[buyer], instrument, "buy", price, qty)
        drain(self.runner)
        (self.trades[name],) = Trade.objects.exclude(id__in=before)
        return self.trades[name]

    def allocation(self, name: str, holder: str) -> Allocation:
        return Allocation.objects.get(trade=self.trades[name], holder=self.members[holder].organisation)

    @property
    def delivery_day(self):
        return timezone.localtime(self.nx.delivery_start).date()


def _end_windows(*instruments: Instrument) -> None:
    """Delivery ended an hour ago (as tests/settlement's Market.end_window), listings moved along."""
    end = timezone.now() - timedelta(hours=1)
    for instrument in instruments:
        Instrument.objects.filter(pk=instrument.pk).update(
            delivery_start=end - timedelta(days=1), delivery_end=end,
            gate_closure_at=end - timedelta(days=1, hours=2), state=Instrument.State.CLOSED)
        ListingPeriod.objects.filter(period_start=instrument.delivery_start, hub=instrument.hub,
                                     compute_class=instrument.compute_class).update(period_start=end - timedelta(days=1))
        instrument.refresh_from_db()


def statistics_market_make(regulator: Membership) -> StatisticsMarket:
    nx = make_instrument(class_code="AI80", hub_code="NX")
    yrd = make_instrument(class_code="AI80", hub_code="YRD", reference_fen=2500)
    members = {"P1": funded("provider"), "P2": funded("provider"), "B1": funded(), "B2": funded(), "B3": funded(),
               "regulator": regulator}
    list_capacity(organisation=members["P1"].organisation, instrument=nx, scu_h=1000)
    list_capacity(organisation=members["P2"].organisation, instrument=nx, scu_h=500)
    list_capacity(organisation=members["P2"].organisation, instrument=yrd, scu_h=400)
    ComputeAsset.objects.filter(provider=members["P1"].organisation).update(green_share=Decimal("80.00"))
    ComputeAsset.objects.filter(provider=members["P2"].organisation).update(green_share=Decimal("30.50"))
    market = StatisticsMarket(nx=nx, yrd=yrd, members=members, runner=EngineRunner())
    market.runner.load()
    market.trade("t1", nx, "P1", "B1", 100, "20.00")
    market.trade("t2", nx, "P2", "B2", 50, "21.00")
    market.trade("t3", nx, "P1", "B2", 30, "19.50")
    market.trade("t4", yrd, "P2", "B1", 40, "25.00")
    market.trade("t5", nx, "B1", "B3", 20, "22.00")
    _end_windows(nx, yrd)
    during = nx.delivery_start + timedelta(hours=1)
    p1, p2 = actor_from_user(members["P1"].user), actor_from_user(members["P2"].user)
    metering_report(actor=p1, allocation_id=market.allocation("t1", "B1").id, device_hours="80", now=during)
    metering_report(actor=p2, allocation_id=market.allocation("t2", "B2").id, device_hours="45", now=during)
    report = metering_report(actor=p1, allocation_id=market.allocation("t3", "B2").id, device_hours="30", now=during)
    metering_report(actor=p1, allocation_id=market.allocation("t5", "B3").id, device_hours="20", now=during)
    dispute = dispute_open(actor=actor_from_user(members["B2"].user), allocation_id=market.allocation("t3", "B2").id,
                           reason="Six of the thirty hours the nodes were unreachable", report_id=report.id)
    dispute_resolve(actor=actor_from_user(regulator.user), dispute_id=dispute.id, outcome="adjust",
                    delivered_device_hours="24", note="The holder's monitoring shows 24 device-hours")
    settled = settle(now=nx.delivery_end + timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS + 1))
    assert settled == 5 and invariants_check() == []
    return market
