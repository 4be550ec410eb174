from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Organisation
from marketplace.models import Cluster, Listing, ListingPeriod, ProvenanceEvent
from marketplace.services import asset_register, listing_create
from tests.conftest import token_client
from tests.factories import MembershipFactory
from tests.marketplace.helpers import assert_error, day, provide_client

pytestmark = pytest.mark.django_db
CHINA = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def listing_body(asset, device_type, tomorrow):
    return {"asset": asset.id, "device_type": device_type.id, "compute_class": "AI80", "device_count": 50,
            "window_start": day(tomorrow, 0), "window_end": day(tomorrow, 3), "reserve_price": "15.80"}


def _written():
    return Listing.objects.count(), ListingPeriod.objects.count(), ProvenanceEvent.objects.count()


def test_a_provider_lists_capacity_once_per_idempotency_key(provider, listing_body, tomorrow):
    client = provide_client(provider)
    first = client.post("/api/v1/listings/", listing_body, format="json", HTTP_IDEMPOTENCY_KEY="lst-1")
    again = client.post("/api/v1/listings/", listing_body, format="json", HTTP_IDEMPOTENCY_KEY="lst-1")
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    data = first.json()
    assert data["listed_scu_h"] == 3 * 960 and data["factor"] == "0.8000" and data["hub"] == "NX"
    assert [p["scu_h"] for p in data["periods"]] == [960, 960, 960]
    assert Listing.objects.count() == 1
    assert_error(client.post("/api/v1/listings/", {**listing_body, "device_count": 51}, format="json",
                             HTTP_IDEMPOTENCY_KEY="lst-1"), 409, "idempotency_key_reused")
    assert Listing.objects.count() == 1


def test_a_date_means_china_midnight(provider, listing_body, tomorrow):
    client = provide_client(provider)
    local = tomorrow.astimezone(CHINA).date()
    response = client.post("/api/v1/listings/", {**listing_body, "window_start": local.isoformat(),
                                                 "window_end": (local + timedelta(days=1)).isoformat()}, format="json")
    assert response.status_code == 201, response.json()
    assert datetime.fromisoformat(response.json()["periods"][0]["period_start"]) == tomorrow
    assert response.json()["window_start"].endswith("T00:00:00+08:00")


@pytest.mark.parametrize(
    "changes, status, code, field",
    [
        ({"device_count": 101}, 422, "over_listing", "device_count"),
        ({"device_count": 0}, 400, "invalid", "device_count"),
        ({"device_count": "ten"}, 400, "invalid", "device_count"),
        ({"compute_class": "CPU"}, 422, "device_unqualified", "device_type"),
        ({"compute_class": "NOPE"}, 400, "invalid", "compute_class"),
        ({"device_type": 999999}, 400, "invalid", "device_type"),
        ({"asset": 999999}, 404, "not_found", None),
        ({"reserve_price": "0"}, 400, "invalid", "reserve_price"),
        ({"reserve_price": "1.005"}, 400, "invalid", "reserve_price"),
        ({"reserve_price": None}, 400, "invalid", "reserve_price"),
        ({"window_start": "2020-01-01"}, 400, "window_in_past", "window_start"),
        ({"window_start": "tomorrow"}, 400, "invalid", "window_start"),
        ({"window_end": "2020-01-01"}, 400, "invalid", "window_end"),
        ({"window_start": "0001-01-01"}, 400, "invalid", "window_start"),
        ({"window_end": "9999-12-31T23:00:00Z"}, 400, "invalid", "window_end"),
        ({"device_type": 10**30}, 400, "invalid", "device_type"),
    ],
)
def test_bad_listings_are_refused_and_nothing_is_written(provider, listing_body, changes, status, code, field):
    before = _written()
    error = assert_error(provide_client(provider).post("/api/v1/listings/", {**listing_body, **changes}, format="json"), status, code)
    if field:
        assert field in error["fields"], error
    assert _written() == before


def test_misaligned_and_unattested_listings_are_refused(provider, listing_body, device_type, tomorrow):
    client = provide_client(provider)
    shifted = (tomorrow + timedelta(hours=2)).isoformat()
    assert_error(client.post("/api/v1/listings/", {**listing_body, "window_start": shifted}, format="json"), 400, "window_misaligned")
    from marketplace.models import DeviceType

    DeviceType.objects.filter(pk=device_type.pk).update(memory_gb=96)  # the attestation signed 80 GB
    assert_error(client.post("/api/v1/listings/", listing_body, format="json"), 422, "device_unattested")
    assert not Listing.objects.exists()


def test_a_provider_cannot_list_or_change_another_providers_capacity(listing, listing_body):
    intruder = provide_client(MembershipFactory(organisation__kind="provider", role="provider_admin"))
    before = _written(), list(ListingPeriod.objects.values_list("scu_h", flat=True))
    assert_error(intruder.post("/api/v1/listings/", listing_body, format="json"), 404)
    assert_error(intruder.patch(f"/api/v1/listings/{listing.id}/", {"device_count": 1}, format="json"), 403, "not_your_listing")
    assert_error(intruder.post(f"/api/v1/listings/{listing.id}/withdraw/"), 403, "not_your_listing")
    assert (_written(), list(ListingPeriod.objects.values_list("scu_h", flat=True))) == before
    listing.refresh_from_db()
    assert listing.status == "active" and listing.device_count == 40


def test_buyers_cannot_list(buyer, listing_body):
    assert_error(token_client(buyer).post("/api/v1/listings/", listing_body, format="json"), 403, "scope_missing")
    assert not Listing.objects.exists()


def test_changing_and_withdrawing_a_listing(provider, listing):
    client = provide_client(provider)
    response = client.patch(f"/api/v1/listings/{listing.id}/", {"device_count": 20, "reserve_price": "14.00"}, format="json")
    assert response.status_code == 200 and response.json()["listed_scu_h"] == 3 * 384
    assert response.json()["reserve_price"] == "14.00"
    for bad, code in (({"device_count": 0}, "invalid"), ({"reserve_price": "abc"}, "invalid"), ({"device_count": 101}, "over_listing")):
        assert_error(client.patch(f"/api/v1/listings/{listing.id}/", bad, format="json"), 400 if code == "invalid" else 422, code)
    ListingPeriod.objects.filter(listing=listing).update(sold_scu_h=100)
    assert_error(client.patch(f"/api/v1/listings/{listing.id}/", {"device_count": 5}, format="json"), 422, "below_sold")
    assert_error(client.post(f"/api/v1/listings/{listing.id}/withdraw/"), 422, "listing_sold")
    ListingPeriod.objects.filter(listing=listing).update(sold_scu_h=0)
    first = client.post(f"/api/v1/listings/{listing.id}/withdraw/", HTTP_IDEMPOTENCY_KEY="wd-1")
    again = client.post(f"/api/v1/listings/{listing.id}/withdraw/", HTTP_IDEMPOTENCY_KEY="wd-1")
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert first.json()["status"] == "withdrawn" and first.json()["listed_scu_h"] == 0
    assert ProvenanceEvent.objects.filter(kind="listing_withdrawn").count() == 1
    assert_error(client.post(f"/api/v1/listings/{listing.id}/withdraw/"), 422, "listing_withdrawn")
    assert_error(client.post("/api/v1/listings/999999/withdraw/"), 404, "not_found")
    assert_error(client.patch("/api/v1/listings/999999/", {"device_count": 1}, format="json"), 404, "not_found")


def _market(provider, device_type, catalogue, tomorrow):
    """Three verified providers' listings in NX, GS and GZ, and one of a pending provider."""
    ai80 = catalogue["classes"]["AI80"]
    rows = [("NX-ZW", "1.15", "86.00", "15.80", 0), ("GS-QY", "1.20", "82.50", "11.50", 1), ("GZ-GA", "1.30", "65.00", "16.20", 2)]
    listings = []
    for cluster, pue, green, price, offset in rows:
        owner = MembershipFactory(organisation__kind="provider", role="provider_admin").organisation
        asset = asset_register(provider=owner, name=f"Hall {cluster}", cluster=Cluster.objects.get(code=cluster), pue=pue,
                               green_share=green, inventory=[(device_type, 100)])
        listings.append(listing_create(asset=asset, device_type=device_type, compute_class=ai80, device_count=10,
                                       window_start=tomorrow + timedelta(days=offset),
                                       window_end=tomorrow + timedelta(days=offset + 2), reserve_price=price))
    Organisation.objects.filter(pk=provider.organisation_id).update(kyc_status="pending")
    pending = asset_register(provider=provider.organisation, name="Pending hall", cluster=Cluster.objects.get(code="NX-ZW"),
                             pue="1.10", green_share="90", inventory=[(device_type, 10)])
    hidden = listing_create(asset=pending, device_type=device_type, compute_class=ai80, device_count=10,
                            window_start=tomorrow, window_end=tomorrow + timedelta(days=1), reserve_price="1.00")
    return listings, hidden


def test_browsing_filters_sorts_and_pages(api, provider, device_type, catalogue, tomorrow):
    (nx, gs, gz), hidden = _market(provider, device_type, catalogue, tomorrow)

    def ids(**params):
        response = api.get("/api/v1/listings/", params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [gz.id, gs.id, nx.id]  # newest first; the pending provider's listing is not on the market
    assert ids(hub="gs") == [gs.id]
    assert ids(compute_class="AI24") == []
    assert ids(ordering="price") == [gs.id, nx.id, gz.id]
    assert ids(ordering="-price") == [gz.id, nx.id, gs.id]
    assert ids(price_max="16.00", price_min="12") == [nx.id]
    assert ids(pue_max="1.20") == [gs.id, nx.id]
    assert ids(green_min="80", ordering="-green") == [nx.id, gs.id]
    assert ids(window_from=day(tomorrow, 3)) == [gz.id]
    assert ids(window_to=day(tomorrow, 1)) == [nx.id]
    assert ids(city="Zhongwei", latency_max=1) == [nx.id]
    assert ids(city="兰州", latency_max=5) == [gs.id]
    assert ids(city="Guiyang", ordering="latency")[0] == gz.id
    first = api.get("/api/v1/listings/", {"page_size": 2, "ordering": "price"}).json()
    assert [r["id"] for r in first["results"]] == [gs.id, nx.id] and first["next"]
    second = api.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [gz.id] and second["next"] is None
    assert api.get(f"/api/v1/listings/{hidden.id}/").status_code == 404
    own = provide_client(provider)
    assert [r["id"] for r in own.get("/api/v1/listings/", {"mine": "true"}).json()["results"]] == [hidden.id]
    assert own.get(f"/api/v1/listings/{hidden.id}/").json()["periods"][0]["scu_h"] == 192


@pytest.mark.parametrize(
    "params, status",
    [
        ({"price_max": "cheap"}, 400), ({"price_min": "5", "price_max": "4"}, 400), ({"pue_max": "0.5"}, 400),
        ({"green_min": "101"}, 400), ({"window_from": "soon"}, 400), ({"window_from": "2026-01-02", "window_to": "2026-01-01"}, 400),
        ({"ordering": "random"}, 400), ({"latency_max": "3", "city": "Shanghai"}, 400), ({"latency_max": "5"}, 400),
        ({"ordering": "latency"}, 400), ({"window_from": "0001-01-01"}, 400), ({"mine": "true"}, 401), ({"cursor": "bad"}, 404), ({"page_size": "x"}, 200),
    ],
)
def test_bad_browse_parameters_are_4xx_in_the_error_shape(api, catalogue, params, status):
    response = api.get("/api/v1/listings/", params)
    if status == 200:
        assert response.status_code == 200
    else:
        assert_error(response, status)


def test_the_listings_api_uses_a_fixed_number_of_queries(api, provider, device_type, catalogue, tomorrow,
                                                         django_assert_max_num_queries):
    _market(provider, device_type, catalogue, tomorrow)
    with django_assert_max_num_queries(3):
        assert len(api.get("/api/v1/listings/", {"city": "Shanghai"}).json()["results"]) == 3


def test_writes_are_throttled_with_retry_after(provider, listing_body, settings):
    settings.THROTTLE_MARKETPLACE_WRITE = "2/min"
    client = provide_client(provider)
    statuses = [client.post("/api/v1/listings/", {**listing_body, "device_count": 1}, format="json").status_code for _ in range(2)]
    assert statuses == [201, 201]
    throttled = client.post("/api/v1/listings/", {**listing_body, "device_count": 1}, format="json")
    assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) > 0
    assert client.get("/api/v1/listings/").status_code == 200
