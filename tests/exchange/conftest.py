"""Trading fixtures: an instrument, listed capacity behind a provider, funds for a buyer."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Organisation
from exchange import ledger
from exchange.engine import EngineRunner
from exchange.models import FeeTier, Instrument

CHINA = ZoneInfo("Asia/Shanghai")


def ensure_catalogue():
    """Transactional tests empty every table, the seeded catalogue included."""
    from marketplace.catalogue import catalogue_load
    from marketplace.models import Cluster, ComputeClass, Hub

    catalogue_load(hub_model=Hub, cluster_model=Cluster, class_model=ComputeClass)


def make_instrument(*, state=Instrument.State.CONTINUOUS, reference_fen=2000, days_ahead=2, class_code=None, hub_code="NX"):
    from marketplace.models import ComputeClass, Hub

    ensure_catalogue()
    compute_class = ComputeClass.objects.get(code=class_code) if class_code else ComputeClass.objects.filter(category="ai").order_by("code").first()
    hub = Hub.objects.get(code=hub_code)
    day = timezone.now().astimezone(CHINA).date() + timedelta(days=days_ahead)
    start = datetime(day.year, day.month, day.day, tzinfo=CHINA)
    instrument, _ = Instrument.objects.get_or_create(
        compute_class=compute_class, hub=hub, delivery_start=start,
        defaults=dict(
            code=f"{compute_class.code}.{hub.code}.{day.isoformat()}", delivery_end=start + timedelta(days=1),
            gate_closure_at=start - timedelta(hours=2), state=state, reference_price_fen=reference_fen,
            band_bps=1000,
        ),
    )
    return instrument


def list_capacity(*, organisation: Organisation, instrument: Instrument, scu_h: int, factor=Decimal("1.0000")):
    """A listing of ``organisation`` whose period in ``instrument``'s window holds ``scu_h``."""
    from marketplace.models import (
        Attestation, AttestorKey, Cluster, ComputeAsset, DeviceType, Listing, ListingPeriod,
    )
    from tests.factories import OrganisationFactory

    attestor = Organisation.objects.filter(kind="attestor").first() or OrganisationFactory(kind="attestor")
    device, _ = DeviceType.objects.get_or_create(
        vendor="TestVendor", model=f"X{factor}", defaults=dict(memory_gb=96, interconnect_gbps=900, registered_by=attestor))
    key, _ = AttestorKey.objects.get_or_create(key_id=f"k{attestor.id:015d}"[:16], defaults=dict(organisation=attestor, public_key="AAAA"))
    attestation = Attestation.objects.create(
        device_type=device, attestor=attestor, key=key, method="test", measured_on=date.today(),
        sustained_fp16_pflops=factor, payload={}, signature=f"sig-{Attestation.objects.count()}")
    cluster = Cluster.objects.filter(hub=instrument.hub).first()
    asset, _ = ComputeAsset.objects.get_or_create(
        provider=organisation, name=f"Hall of {organisation.name}",
        defaults=dict(hub=instrument.hub, cluster=cluster, pue=Decimal("1.20"), green_share=Decimal("80")))
    listing = Listing.objects.create(
        asset=asset, device_type=device, compute_class=instrument.compute_class, attestation=attestation, factor=factor,
        device_count=max(1, int(Decimal(scu_h) / 24 / factor) + 1), window_start=instrument.delivery_start,
        window_end=instrument.delivery_end, reserve_price=Decimal("1.00"))
    return ListingPeriod.objects.create(
        listing=listing, period_start=instrument.delivery_start, scu_h=scu_h, compute_class=instrument.compute_class,
        hub=instrument.hub, provider=organisation)


@pytest.fixture
def fee_tier(db):
    return FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))[0]


@pytest.fixture
def instrument(db, fee_tier):
    return make_instrument()


@pytest.fixture
def funded_buyer(buyer):
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    return buyer


@pytest.fixture
def listed_provider(provider, instrument):
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=1000)
    return provider


@pytest.fixture
def runner(db):
    engine = EngineRunner()
    engine.load()
    return engine


def drain(runner) -> int:
    total = 0
    while count := runner.step():
        total += count
    return total
