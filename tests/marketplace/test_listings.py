from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchange.errors import AppError
from marketplace.models import ComputeClass, Listing, ListingPeriod, ProvenanceEvent
from marketplace.selectors import capacity_listed, listing_periods_for
from marketplace.services import compute_class_create, inventory_set, listing_change, listing_create, listing_withdraw
from tests.factories import DeviceTypeFactory, attest

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def _list(asset, device_type, compute_class, start, days, count, **extra):
    return listing_create(asset=asset, device_type=device_type, compute_class=compute_class, device_count=count,
                          window_start=start, window_end=start + days * DAY, reserve_price=extra.pop("price", "15.80"), **extra)


def test_a_three_day_listing_backs_three_daily_periods_in_whole_scu_h(listing, asset, catalogue, tomorrow):
    periods = list(listing.periods.order_by("period_start"))
    assert [p.period_start for p in periods] == [tomorrow, tomorrow + DAY, tomorrow + 2 * DAY]
    assert all(p.period_start.astimezone(timezone.get_default_timezone()).hour == 0 for p in periods)
    assert [p.scu_h for p in periods] == [768, 768, 768]  # 40 × 24 h × 0.8000
    assert listing.factor == Decimal("0.8000")
    ai80 = catalogue["classes"]["AI80"]
    assert capacity_listed(provider_id=asset.provider_id, compute_class_id=ai80.id, hub_id=asset.hub_id,
                           period_start=tomorrow + DAY) == (768, 0)
    assert capacity_listed(provider_id=asset.provider_id, compute_class_id=ai80.id, hub_id=asset.hub_id,
                           period_start=tomorrow + 3 * DAY) == (0, 0)


def test_quantities_round_down_to_whole_scu_h(asset, device_type, catalogue, tomorrow):
    listing = _list(asset, device_type, catalogue["classes"]["HPC64"], tomorrow, 1, 33)
    assert listing.periods.get().scu_h == 41  # 33 × 24 × 0.0520 = 41.184


def test_over_listing_is_rejected_including_overlapping_windows(listing, asset, device_type, catalogue, tomorrow):
    ai80, hpc = catalogue["classes"]["AI80"], catalogue["classes"]["HPC64"]
    with pytest.raises(AppError) as err:
        _list(asset, device_type, ai80, tomorrow, 3, 61)
    assert err.value.code == "over_listing" and "At most 60" in err.value.fields["device_count"]
    # Overlapping on the third day only: 40 + 60 = 100 fits, one more device does not.
    _list(asset, device_type, hpc, tomorrow + 2 * DAY, 3, 60)
    with pytest.raises(AppError) as err:
        _list(asset, device_type, ai80, tomorrow + 2 * DAY, 1, 1)
    assert err.value.code == "over_listing"
    # Windows are half-open: one that starts where another ends does not overlap it.
    _list(asset, device_type, ai80, tomorrow + 5 * DAY, 1, 100)
    _list(asset, device_type, ai80, tomorrow + 3 * DAY, 2, 40)
    assert Listing.objects.filter(asset=asset).count() == 4


def test_withdrawn_listings_free_their_devices(listing, asset, device_type, catalogue, tomorrow):
    listing_withdraw(listing=listing)
    _list(asset, device_type, catalogue["classes"]["AI80"], tomorrow, 3, 100)


def test_unattested_hardware_cannot_be_listed(asset, catalogue, tomorrow):
    bare = DeviceTypeFactory()
    inventory_set(asset=asset, device_type=bare, count=10)
    with pytest.raises(AppError) as err:
        _list(asset, bare, catalogue["classes"]["AI80"], tomorrow, 1, 1)
    assert err.value.code == "device_unattested"
    assert not Listing.objects.filter(device_type=bare).exists()


def test_an_attestation_without_the_class_precision_does_not_attest_for_it(asset, attestor_key, catalogue, tomorrow):
    key, private_key = attestor_key
    node = DeviceTypeFactory(memory_gb=512, interconnect_gbps=100)
    attest(device_type=node, attestor_key=key, private_key=private_key, fp64="0.0030", fp16=None)
    inventory_set(asset=asset, device_type=node, count=400)
    with pytest.raises(AppError) as err:
        _list(asset, node, catalogue["classes"]["CPU"], tomorrow, 1, 10)
    assert err.value.code == "device_unattested"


def test_devices_below_the_class_minimums_are_rejected(asset, attestor_key, catalogue, tomorrow):
    key, private_key = attestor_key
    small = DeviceTypeFactory(memory_gb=48, interconnect_gbps=100)
    attest(device_type=small, attestor_key=key, private_key=private_key, fp16="0.2400", fp64=None)
    inventory_set(asset=asset, device_type=small, count=10)
    with pytest.raises(AppError) as err:
        _list(asset, small, catalogue["classes"]["AI80"], tomorrow, 1, 10)
    assert err.value.code == "device_unqualified"
    assert {"memory_gb", "interconnect_gbps"} <= set(err.value.fields)
    assert _list(asset, small, catalogue["classes"]["AI24"], tomorrow, 1, 10).periods.get().scu_h == 57


def test_devices_not_in_the_inventory_cannot_be_listed(asset, attestor_key, catalogue, tomorrow):
    key, private_key = attestor_key
    elsewhere = DeviceTypeFactory()
    attest(device_type=elsewhere, attestor_key=key, private_key=private_key)
    with pytest.raises(AppError) as err:
        _list(asset, elsewhere, catalogue["classes"]["AI80"], tomorrow, 1, 1)
    assert err.value.code == "not_in_inventory"


@pytest.mark.parametrize(
    "start_offset, days, code",
    [
        (timedelta(hours=1), 1, "window_misaligned"),
        (timedelta(days=-3), 1, "window_in_past"),
        (timedelta(0), 0, "invalid"),
        (timedelta(0), 400, "window_too_long"),
    ],
)
def test_windows_are_whole_future_periods(asset, device_type, catalogue, tomorrow, start_offset, days, code):
    with pytest.raises(AppError) as err:
        _list(asset, device_type, catalogue["classes"]["AI80"], tomorrow + start_offset, days, 1)
    assert err.value.code == code


def test_too_few_devices_for_one_scu_h_are_refused(asset, attestor_key, catalogue, tomorrow):
    key, private_key = attestor_key
    node = DeviceTypeFactory(memory_gb=512, interconnect_gbps=100, peak_fp16_pflops=None, peak_fp32_pflops=Decimal("0.01"))
    attest(device_type=node, attestor_key=key, private_key=private_key, fp16=None, fp64=None, fp32="0.0040")
    inventory_set(asset=asset, device_type=node, count=10)
    with pytest.raises(AppError) as err:
        _list(asset, node, catalogue["classes"]["CPU"], tomorrow, 1, 10)  # 10 × 24 × 0.004 = 0.96
    assert err.value.code == "quantity_too_small"


def test_a_class_with_shorter_periods_lists_one_row_per_period(asset, device_type, catalogue, tomorrow):
    six = compute_class_create(code="AI80H6", name_en="AI80 in 6 h periods", name_zh="AI80 六小时", category="ai",
                               reference_precision="fp16", min_memory_gb=80, min_interconnect_gbps=200, period_hours=6)
    listing = listing_create(asset=asset, device_type=device_type, compute_class=six, device_count=10,
                             window_start=tomorrow + timedelta(hours=6), window_end=tomorrow + timedelta(hours=18),
                             reserve_price="15.00")
    assert [p.scu_h for p in listing.periods.all()] == [48, 48]
    with pytest.raises(AppError) as err:
        listing_create(asset=asset, device_type=device_type, compute_class=six, device_count=10,
                       window_start=tomorrow + timedelta(hours=3), window_end=tomorrow + timedelta(hours=9),
                       reserve_price="15.00")
    assert err.value.code == "window_misaligned"


def _sell(listing, period_index, scu_h):
    period = listing.periods.order_by("period_start")[period_index]
    ListingPeriod.objects.filter(pk=period.pk).update(sold_scu_h=scu_h)


def test_a_listing_cannot_shrink_below_what_is_sold(listing):
    _sell(listing, 1, 500)
    with pytest.raises(AppError) as err:
        listing_change(listing=listing, device_count=26)  # 26 × 24 × 0.8 = 499
    assert err.value.code == "below_sold"
    assert listing.periods.order_by("period_start")[1].scu_h == 768
    listing_change(listing=listing, device_count=27)  # 518
    assert set(listing.periods.values_list("scu_h", flat=True)) == {518}
    event = ProvenanceEvent.objects.filter(kind="listing_changed").latest("seq")
    assert event.payload["changes"]["device_count"] == [40, 27]


def test_a_listing_with_sold_capacity_cannot_be_withdrawn(listing, asset, catalogue, tomorrow):
    _sell(listing, 2, 1)
    with pytest.raises(AppError) as err:
        listing_withdraw(listing=listing)
    assert err.value.code == "listing_sold"
    listing.refresh_from_db()
    assert listing.status == "active" and set(listing.periods.values_list("scu_h", flat=True)) == {768}


def test_withdrawing_cuts_the_coming_periods_to_zero_and_keeps_the_rows(listing, asset, catalogue, tomorrow):
    listing_withdraw(listing=listing)
    listing.refresh_from_db()
    assert listing.status == "withdrawn" and listing.withdrawn_at is not None
    assert list(listing.periods.values_list("scu_h", flat=True)) == [0, 0, 0]
    assert capacity_listed(provider_id=asset.provider_id, compute_class_id=catalogue["classes"]["AI80"].id,
                           hub_id=asset.hub_id, period_start=tomorrow) == (0, 0)
    with pytest.raises(AppError) as err:
        listing_withdraw(listing=listing)
    assert err.value.code == "listing_withdrawn"
    with pytest.raises(AppError):
        listing_change(listing=listing, device_count=1)


def test_periods_that_have_started_keep_their_size(listing, tomorrow):
    listing_change(listing=listing, device_count=20, now=tomorrow + timedelta(hours=1))
    assert list(listing.periods.order_by("period_start").values_list("scu_h", flat=True)) == [768, 384, 384]


def test_growing_needs_inventory_and_a_still_valid_attestation(listing, device_type):
    with pytest.raises(AppError) as err:
        listing_change(listing=listing, device_count=101)
    assert err.value.code == "over_listing"
    listing_change(listing=listing, device_count=100)
    from marketplace.services import device_type_update

    device_type_update(device_type=device_type, organisation=device_type.registered_by, interconnect_gbps=800)
    listing_change(listing=listing, device_count=90)
    with pytest.raises(AppError) as err:
        listing_change(listing=listing, device_count=95)
    assert err.value.code == "attestation_void"


def test_listing_periods_for_gives_oldest_listing_first_with_asset_and_device_loaded(
    listing, asset, device_type, catalogue, tomorrow, django_assert_num_queries
):
    ai80 = catalogue["classes"]["AI80"]
    later = _list(asset, device_type, ai80, tomorrow, 1, 10)
    with django_assert_num_queries(1):
        rows = list(listing_periods_for(provider_id=asset.provider_id, compute_class_id=ai80.id, hub_id=asset.hub_id,
                                        period_start=tomorrow))
        assert [r.listing_id for r in rows] == [listing.id, later.id]
        assert [r.listing.asset.name for r in rows] == [asset.name] * 2
        assert rows[0].listing.device_type == device_type
    assert all(r.hub_id == asset.hub_id and r.provider_id == asset.provider_id and r.compute_class_id == ai80.id for r in rows)


def test_class_delivery_period_cannot_change_once_listed(listing, catalogue):
    from marketplace.services import compute_class_update

    with pytest.raises(AppError) as err:
        compute_class_update(compute_class=ComputeClass.objects.get(code="AI80"), period_hours=12)
    assert err.value.code == "class_in_use"
