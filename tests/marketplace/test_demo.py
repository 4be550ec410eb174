from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from marketplace.models import AssetOwnership, Attestation, ComputeAsset, Listing, ListingPeriod, ProvenanceEvent
from marketplace.periods import china_midnight, china_today
from marketplace.selectors import attestation_latest_valid, provenance_verify

pytestmark = pytest.mark.django_db


def _counts():
    return [m.objects.count() for m in (ComputeAsset, AssetOwnership, Attestation, Listing, ListingPeriod, ProvenanceEvent)]


def test_seed_demo_builds_a_small_attested_market_and_is_idempotent():
    call_command("seed_demo")
    counts = _counts()
    call_command("seed_demo")
    assert _counts() == counts
    assert counts[-2] < 100  # listing periods: a modest demo

    a80 = attestation_latest_valid(device_type=Attestation.objects.get(device_type__model="A80").device_type, precision="fp16")
    hx = attestation_latest_valid(device_type=Attestation.objects.get(device_type__model="HX-910").device_type, precision="fp16")
    assert hx.sustained_fp16_pflops / a80.sustained_fp16_pflops == Decimal("0.75")
    for asset in ComputeAsset.objects.all():
        owners = AssetOwnership.objects.filter(asset=asset)
        assert 2 <= owners.count() <= 3 and sum(o.share_bp for o in owners) == 10000

    today = china_midnight(china_today(timezone.now()))
    starts = set(ListingPeriod.objects.values_list("period_start", flat=True))
    assert starts == {today + timedelta(days=n) for n in range(7)}
    assert provenance_verify().ok
