from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Organisation
from exchange.errors import AppError
from marketplace.models import AssetOwnership, Cluster, ComputeAsset, InventoryItem, ProvenanceEvent
from marketplace.selectors import asset_owners_at, owner_sets
from marketplace.services import asset_owners_set, asset_register, asset_update, inventory_set
from tests.factories import OrganisationFactory

pytestmark = pytest.mark.django_db


def _register(provider, device_type, **changes):
    values = dict(provider=provider.organisation, name="Hall", cluster=Cluster.objects.get(code="GS-QY"), pue="1.20",
                  green_share="82.50", inventory=[(device_type, 10)])
    values.update(changes)
    return asset_register(**values)


def test_registering_an_asset_records_owners_inventory_and_a_provenance_event(provider, device_type):
    partner = OrganisationFactory(kind=Organisation.Kind.PROVIDER)
    asset = _register(provider, device_type, owners=[(provider.organisation, 6000), (partner, 4000)])
    assert asset.hub.code == "GS" and asset.cluster.code == "GS-QY"
    assert [(o.organisation, o.share_bp) for o in asset_owners_at(asset=asset)] == [(provider.organisation, 6000), (partner, 4000)]
    assert InventoryItem.objects.get(asset=asset).count == 10
    event = ProvenanceEvent.objects.get(asset=asset)
    assert event.kind == "asset_registered"
    assert [o["share_bp"] for o in event.payload["owners"]] == [6000, 4000]


@pytest.mark.parametrize("shares", [[6000, 3000], [6000, 4001], [10001], [5000, 5000, 0], []])
def test_share_totals_other_than_10000_are_rejected_and_nothing_is_written(provider, device_type, shares):
    owners = [(OrganisationFactory(), bp) for bp in shares]
    before = (ComputeAsset.objects.count(), AssetOwnership.objects.count(), ProvenanceEvent.objects.count())
    with pytest.raises(AppError) as err:
        _register(provider, device_type, owners=owners)
    assert err.value.code == "shares_invalid"
    assert (ComputeAsset.objects.count(), AssetOwnership.objects.count(), ProvenanceEvent.objects.count()) == before


def test_an_owner_listed_twice_is_rejected(provider, device_type):
    with pytest.raises(AppError) as err:
        _register(provider, device_type, owners=[(provider.organisation, 5000), (provider.organisation, 5000)])
    assert err.value.code == "shares_invalid" and "owners.1.organisation" in err.value.fields


@pytest.mark.parametrize("field, value", [("pue", "0.99"), ("pue", "3.5"), ("pue", "1.234"), ("green_share", "100.01"),
                                          ("green_share", "-1"), ("name", "  "), ("pue", 1.2)])
def test_asset_values_out_of_range_are_rejected(provider, device_type, field, value):
    with pytest.raises(AppError) as err:
        _register(provider, device_type, **{field: value})
    assert field in err.value.fields


def test_a_change_of_shares_is_a_new_set_from_a_time_and_the_past_is_kept(asset, provider):
    partner = OrganisationFactory(kind=Organisation.Kind.PROVIDER)
    first = timezone.now()
    later = first + timedelta(days=2)
    asset_owners_set(asset=asset, owners=[(provider.organisation, 7500), (partner, 2500)], effective_from=later)
    assert [o.share_bp for o in asset_owners_at(asset=asset, at=first + timedelta(days=1))] == [10000]
    assert [o.share_bp for o in asset_owners_at(asset=asset, at=later)] == [7500, 2500]
    assert len(owner_sets(asset=asset)) == 2
    event = ProvenanceEvent.objects.filter(asset=asset, kind="owners_changed").get()
    assert event.payload["previous"][0]["share_bp"] == 10000


def test_shares_cannot_be_changed_in_the_past_or_before_the_latest_set(asset, provider):
    with pytest.raises(AppError) as err:
        asset_owners_set(asset=asset, owners=[(provider.organisation, 10000)], effective_from=timezone.now() - timedelta(hours=1))
    assert err.value.code == "effective_in_past"
    asset_owners_set(asset=asset, owners=[(provider.organisation, 10000)], effective_from=timezone.now() + timedelta(days=5))
    with pytest.raises(AppError) as err:
        asset_owners_set(asset=asset, owners=[(provider.organisation, 10000)], effective_from=timezone.now() + timedelta(days=1))
    assert err.value.code == "effective_not_after_latest"


def test_editing_an_asset_records_only_what_changed(asset):
    asset_update(asset=asset, description="After the cooling retrofit", pue="1.15")
    event = ProvenanceEvent.objects.filter(asset=asset, kind="asset_changed").get()
    assert event.payload["changes"] == {"description": ["", "After the cooling retrofit"]}
    asset_update(asset=asset, description="After the cooling retrofit")
    assert ProvenanceEvent.objects.filter(asset=asset, kind="asset_changed").count() == 1


def test_inventory_cannot_drop_below_what_active_listings_use(asset, device_type, listing):
    with pytest.raises(AppError) as err:
        inventory_set(asset=asset, device_type=device_type, count=39)
    assert err.value.code == "inventory_below_listed"
    inventory_set(asset=asset, device_type=device_type, count=40)
    assert InventoryItem.objects.get(asset=asset, device_type=device_type).count == 40
    assert ProvenanceEvent.objects.filter(asset=asset, kind="inventory_changed").count() == 1
