from datetime import timedelta

import pytest

from accounts.models import Organisation
from marketplace import views
from marketplace.models import AssetOwnership, ComputeAsset, InventoryItem, Listing, ProvenanceEvent
from marketplace.services import listing_create
from tests.factories import MembershipFactory, OrganisationFactory

pytestmark = pytest.mark.django_db


def test_an_empty_market_says_how_capacity_arrives(client, catalogue):
    response = client.get("/capacity/")
    assert response.status_code == 200
    assert "No capacity is listed yet" in response.content.decode()


def test_the_market_lists_filters_and_explains_empty_results(client, listing, asset):
    page = client.get("/capacity/").content.decode()
    assert asset.name in page and "AI80" in page and "2304" in page and "15.80" in page
    assert f"/capacity/assets/{asset.id}/" in page
    assert asset.name not in client.get("/capacity/", {"hub": "GS"}).content.decode()
    empty = client.get("/capacity/", {"compute_class": "CPU"}).content.decode()
    assert "No listed capacity matches these filters" in empty and "Clear filters" in empty


def test_latency_circles_come_from_the_city(client, listing):
    page = client.get("/capacity/", {"city": "Zhongwei", "sort": "latency"}).content.decode()
    assert "NX 1 ms" in page and "GS 20 ms" in page
    assert "Zhongwei Hall A" not in client.get("/capacity/", {"city": "Shanghai", "latency_max": "5"}).content.decode()


@pytest.mark.parametrize("params, text", [({"price_max": "cheap"}, "Enter a number"),
                                          ({"latency_max": "5"}, "Give a city"),
                                          ({"date_from": "2026-02-02", "date_to": "2026-02-01"}, "end comes after"),
                                          ({"date_from": "0001-01-01"}, "year from 2000")])
def test_bad_filters_are_explained_with_400(client, catalogue, params, text):
    response = client.get("/capacity/", params)
    assert response.status_code == 400
    assert text in response.content.decode()


def test_the_market_paginates(client, listing, asset, device_type, catalogue, tomorrow, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    listing_create(asset=asset, device_type=device_type, compute_class=catalogue["classes"]["AI24"], device_count=5,
                   window_start=tomorrow, window_end=tomorrow + timedelta(days=1), reserve_price="3.00")
    first = client.get("/capacity/", {"sort": "price"}).content.decode()
    assert "Page 1 of 2" in first and "AI24" in first and "page=2" in first
    second = client.get("/capacity/", {"sort": "price", "page": 2}).content.decode()
    assert "Page 2 of 2" in second and "15.80" in second


def test_the_browse_page_uses_a_fixed_number_of_queries(client, listing, asset, device_type, catalogue, tomorrow,
                                                        django_assert_max_num_queries):
    for day in range(3, 8):
        listing_create(asset=asset, device_type=device_type, compute_class=catalogue["classes"]["AI24"], device_count=5,
                       window_start=tomorrow + timedelta(days=day), window_end=tomorrow + timedelta(days=day + 1),
                       reserve_price="3.00")
    with django_assert_max_num_queries(5):
        response = client.get("/capacity/", {"city": "Beijing", "compute_class": "AI24", "hub": "NX"})
    assert response.content.decode().count("Zhongwei Hall A") == 5


def test_pages_speak_simplified_chinese(client, listing):
    page = client.get("/capacity/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "宁夏" in page and "已挂牌算力" in page
    assert "国家枢纽" in client.get("/capacity/catalogue/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()


def test_the_asset_page_shows_owners_inventory_attestations_and_provenance(client, listing, asset):
    page = client.get(f"/capacity/assets/{asset.id}/").content.decode()
    for text in ("Owners", "100.00 %", "Inventory", "AI80 0.8000", "Attestations", "Verify", "Listing created", "Asset registered"):
        assert text in page, text
    attestation = listing.attestation
    verified = client.get(f"/capacity/assets/{asset.id}/", {"verify": attestation.id}).content.decode()
    assert f"Attestation #{attestation.id} verifies" in verified
    chain = client.get(f"/capacity/assets/{asset.id}/", {"verify_chain": 1}).content.decode()
    assert "Chain intact" in chain
    assert client.get("/capacity/assets/999999/").status_code == 404


def test_the_asset_page_shows_a_broken_link(client, listing, asset):
    from tests.marketplace.test_provenance import _tamper

    target = ProvenanceEvent.objects.get(kind="listing_created")
    _tamper("UPDATE marketplace_provenanceevent SET payload = '{}'::jsonb WHERE id = %s", [target.id])
    page = client.get(f"/capacity/assets/{asset.id}/", {"verify_chain": 1}).content.decode()
    assert f"Chain broken at event #{target.seq}" in page and "does not verify: hash_mismatch" in page


def test_the_catalogue_shows_classes_hubs_and_factors(client, device_type):
    page = client.get("/capacity/catalogue/", {"city": "上海"}).content.decode()
    assert "AI80" in page and "Zhangjiakou" in page and "0.8000" in page and "1 ms" in page
    attestation = device_type.attestations.get()
    assert f"Attestation #{attestation.id} verifies" in client.get("/capacity/catalogue/", {"verify": attestation.id}).content.decode()


def test_the_dashboard_is_for_providers(client, provider, buyer, catalogue):
    assert client.get("/capacity/provider/").status_code == 302
    client.force_login(buyer.user)
    response = client.get("/capacity/provider/")
    assert response.status_code == 403 and "not a provider" in response.content.decode()
    client.force_login(provider.user)
    page = client.get("/capacity/provider/").content.decode()
    assert "No assets yet" in page and "Register an asset" in page and "My assets" in page


def test_a_pending_provider_is_told_what_verification_unlocks(client, provider, catalogue):
    Organisation.objects.filter(pk=provider.organisation_id).update(kyc_status="pending")
    client.force_login(provider.user)
    assert "once the regulator verifies" in client.get("/capacity/provider/").content.decode()


def test_registering_an_asset_and_listing_capacity_from_the_dashboard(client, provider, device_type, catalogue, tomorrow):
    client.force_login(provider.user)
    bad = client.post("/capacity/provider/assets/", {"name": "Hall", "cluster": "NX-ZW", "pue": "0.5", "green_share": "80"})
    assert bad.status_code == 400 and not ComputeAsset.objects.exists()
    response = client.post("/capacity/provider/assets/", {"name": "Hall", "cluster": "NX-ZW", "pue": "1.18", "green_share": "81",
                                                          "device_type": device_type.id, "count": 16})
    asset = ComputeAsset.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/capacity/assets/{asset.id}/"
    assert AssetOwnership.objects.get(asset=asset).share_bp == 10000
    start = tomorrow.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).date().isoformat()
    body = {"asset": asset.id, "device_type": device_type.id, "compute_class": "AI80", "start": start, "days": 2,
            "device_count": 17, "reserve_price": "15.00"}
    over = client.post("/capacity/provider/listings/", body)
    assert over.status_code == 400 and "At most 16" in over.content.decode() and not Listing.objects.exists()
    assert client.post("/capacity/provider/listings/", {**body, "device_count": 16}).status_code == 302
    listing = Listing.objects.get()
    assert listing.periods.count() == 2 and listing.window_start == tomorrow
    assert "Withdraw" in client.get("/capacity/provider/").content.decode()
    assert client.post(f"/capacity/provider/listings/{listing.id}/withdraw/").status_code == 302
    listing.refresh_from_db()
    assert listing.status == "withdrawn"


def test_a_provider_cannot_use_the_pages_on_another_providers_asset(client, listing, asset, device_type):
    intruder = MembershipFactory(organisation__kind="provider", role="provider_admin")
    client.force_login(intruder.user)
    before = (InventoryItem.objects.get(asset=asset).count, AssetOwnership.objects.count(), ProvenanceEvent.objects.count())
    assert client.post(f"/capacity/assets/{asset.id}/inventory/", {"device_type": device_type.id, "count": 0}).status_code == 404
    assert client.post(f"/capacity/assets/{asset.id}/owners/", {"owner_1": intruder.organisation_id, "share_1": 10000}).status_code == 404
    client.post(f"/capacity/provider/listings/{listing.id}/withdraw/")
    listing.refresh_from_db()
    assert listing.status == "active"
    assert "Change owners" not in client.get(f"/capacity/assets/{asset.id}/").content.decode()
    assert (InventoryItem.objects.get(asset=asset).count, AssetOwnership.objects.count(), ProvenanceEvent.objects.count()) == before


def test_owners_and_inventory_forms_on_the_asset_page(client, provider, asset, device_type, listing):
    partner = OrganisationFactory(kind="provider")
    client.force_login(provider.user)
    page = client.get(f"/capacity/assets/{asset.id}/").content.decode()
    assert "Change owners" in page and "Set a device count" in page
    client.post(f"/capacity/assets/{asset.id}/owners/", {"owner_1": provider.organisation_id, "share_1": 6000,
                                                         "owner_2": partner.id, "share_2": 3000})
    assert AssetOwnership.objects.filter(asset=asset).count() == 1
    assert "add up to 9000" in client.get(f"/capacity/assets/{asset.id}/").content.decode()
    client.post(f"/capacity/assets/{asset.id}/owners/", {"owner_1": provider.organisation_id, "share_1": 6000,
                                                         "owner_2": partner.id, "share_2": 4000})
    assert AssetOwnership.objects.filter(asset=asset).count() == 3
    client.post(f"/capacity/assets/{asset.id}/inventory/", {"device_type": device_type.id, "count": 10})
    assert InventoryItem.objects.get(asset=asset).count == 100
    assert "Active listings use up to 40" in client.get(f"/capacity/assets/{asset.id}/").content.decode()
