"""A market that has traded and whose delivery window can be moved into the past."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from importlib import import_module

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.access import actor_from_user
from exchange import ledger
from exchange.engine import EngineRunner
from exchange.invariants import invariants_check
from exchange.models import Allocation, Instrument, LedgerAccount, Trade
from exchange.services import order_place
from settlement.runner import settle
from tests.exchange.conftest import drain, fee_tier, list_capacity, make_instrument  # noqa: F401 (a fixture)
from tests.factories import MembershipFactory


def place(membership, instrument, side, price, qty):
    return order_place(actor=actor_from_user(membership.user),
                       data={"instrument": instrument.code, "side": side, "price": price, "qty": qty})[0]


class Market:
    def __init__(self, instrument: Instrument):
        self.instrument = instrument
        self.runner = EngineRunner()
        self.runner.load()

    def trade(self, seller, buyer, qty: int, price: str = "20.00") -> Trade:
        """``seller`` sells ``qty`` SCU·h to ``buyer`` at ``price``; the trade, allocated."""
        before = set(Trade.objects.values_list("id", flat=True))
        place(seller, self.instrument, "sell", price, qty)
        place(buyer, self.instrument, "buy", price, qty)
        drain(self.runner)
        (trade,) = Trade.objects.exclude(id__in=before)
        return trade

    def end_window(self, *, hours_ago: float = 1) -> Instrument:
        """Move the instrument's day into the past: it ended ``hours_ago`` hours ago."""
        end = timezone.now() - timedelta(hours=hours_ago)
        Instrument.objects.filter(pk=self.instrument.pk).update(
            delivery_start=end - timedelta(days=1), delivery_end=end, gate_closure_at=end - timedelta(days=1, hours=2),
            state=Instrument.State.CLOSED)
        self.instrument.refresh_from_db()
        return self.instrument

    @property
    def during(self):
        """A moment inside the delivery window (for metering reported then)."""
        return self.instrument.delivery_start + timedelta(hours=1)

    @property
    def after_disputes(self):
        """The first moment the allocation may settle."""
        return self.instrument.delivery_end + timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS + 1)

    def settle(self) -> int:
        settled = settle(now=self.after_disputes)
        assert invariants_check() == []
        return settled


def sla_schedule_ensure() -> None:
    """The published SLA schedule of the data migration (a transactional test empties every
    table, and a database kept with --reuse-db stays so)."""
    from settlement.models import SlaCreditStep

    for below_bp, credit_bp in import_module("settlement.migrations.0002_sla_schedule").DEFAULT_STEPS:
        SlaCreditStep.objects.get_or_create(below_bp=below_bp, defaults={"credit_bp": credit_bp})


@pytest.fixture
def sla_schedule(db):
    sla_schedule_ensure()


@pytest.fixture
def market(db, fee_tier, sla_schedule) -> Market:
    return Market(make_instrument())


@pytest.fixture
def seller(provider, market):
    list_capacity(organisation=provider.organisation, instrument=market.instrument, scu_h=1000)
    return provider


@pytest.fixture
def holder(buyer):
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    return buyer


def balance(organisation, kind: str) -> int:
    return LedgerAccount.objects.filter(organisation=organisation, kind=kind).values_list("balance", flat=True).first() or 0


def funded(kind: str = "buyer", fen: int = 1_000_000_00):
    membership = MembershipFactory(organisation__kind=kind, role="trader" if kind == "buyer" else "provider_admin")
    ledger.deposit(organisation=membership.organisation, amount_fen=fen)
    return membership


def allocation_of(trade: Trade) -> Allocation:
    return Allocation.objects.select_related("trade__instrument", "listing_period__listing").get(trade=trade)


def hours(scu_h: int, factor: str = "1.0000") -> Decimal:
    return Decimal(scu_h) / Decimal(factor)
