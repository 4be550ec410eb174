"""The demo simulator now and then plays a wash trader and a spoofer; surveillance flags both.

Transactional: each simulated order commits at its own time, as in ``make run``."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from accounts.models import Organisation
from exchange.instruments import instrument_open
from exchange.models import Instrument, Order
from exchange.simulation import MarketSimulator
from supervision.models import Alert
from supervision.surveillance.scenario_market import engine_for_scenario
from supervision.surveillance.scenarios import surveil

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(settings):
    settings.DEMO_MODE = True
    settings.DEMO_OPENING_AUCTION_SECONDS = 20
    call_command("seed_demo", stdout=io.StringIO())


def test_the_simulator_plays_a_wash_trader_and_a_spoofer(demo):
    engine = engine_for_scenario()
    try:
        # The day instruments of the one provider alone in its owner group come out of their opening auction.
        guian = Organisation.objects.get(name="Gui'an Cloud Valley Data Centre")
        for instrument in Instrument.objects.filter(state=Instrument.State.PRE_OPEN, hub__code="GZ"):
            instrument_open(instrument=instrument)
        engine.settle()
        simulator = MarketSimulator(seed=5, abuse_every=3600, abuse_first_after=-30)  # both due now, once
        washed = None
        for _ in range(40):
            simulator.tick()
            engine.settle()
            if washed is None and simulator.abusers.washed:
                washed, counterpart = simulator.abusers.washed
                instrument_open(instrument=washed.instrument)  # its opening auction ends
                engine.settle()
            if washed is not None and simulator.abusers.spoofs:
                break
        assert washed is not None and simulator.abusers.spoofs == 1
    finally:
        engine.close()
    surveil()
    (wash,) = Alert.objects.filter(rule__code="wash_same_owner")
    pair = {washed.organisation_id, counterpart.organisation_id}
    assert len(pair) == 2 and Organisation.objects.filter(pk__in=pair).values("beneficial_owner").distinct().count() == 1
    assert set(wash.organisation_ids) == pair and {washed.id, counterpart.id} <= set(wash.evidence["orders"])
    (spoof,) = Alert.objects.filter(rule__code="spoofing")
    assert spoof.organisation_ids == [guian.id] and spoof.evidence["figures"]["orders"] == 3
    bids = Order.objects.filter(organisation=guian, side="buy", qty=60)
    assert set(spoof.evidence["orders"]) == set(bids.values_list("id", flat=True))
    assert not Alert.objects.exclude(rule__code__in=["wash_same_owner", "spoofing", "hoarding", "concentration"])


def test_the_wash_trader_uses_only_an_auction_that_uncrosses_before_gate_closure(demo):
    simulator = MarketSimulator(seed=5, abuse_every=3600, abuse_first_after=-30)
    auctions = Instrument.objects.filter(state=Instrument.State.PRE_OPEN)
    # Every opening auction ends after its gate closure: the instrument would close first.
    auctions.update(auction_ends_at=timezone.now() + timedelta(minutes=5),
                    gate_closure_at=timezone.now() + timedelta(minutes=4))
    orders = Order.objects.count()
    assert simulator.abusers._wash() is False and Order.objects.count() == orders
    assert simulator.abusers.washed is None
    auctions.update(gate_closure_at=F("auction_ends_at") + timedelta(hours=1))
    assert simulator.abusers._wash() is True
    ask, bid = simulator.abusers.washed
    assert ask.instrument.auction_ends_at < ask.instrument.gate_closure_at and bid.instrument_id == ask.instrument_id
