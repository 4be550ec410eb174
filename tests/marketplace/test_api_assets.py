import pytest

from accounts.models import Organisation
from marketplace.models import AssetOwnership, ComputeAsset, InventoryItem, ProvenanceEvent
from tests.conftest import token_client
from tests.factories import MembershipFactory, OrganisationFactory
from tests.marketplace.helpers import assert_error, provide_client

pytestmark = pytest.mark.django_db


def _body(device_type, **changes):
    body = {"name": "Qingyang East Campus", "cluster": "GS-QY", "pue": "1.20", "green_share": "82.50",
            "inventory": [{"device_type": device_type.id, "count": 64}]}
    body.update(changes)
    return body


def _written():
    return (ComputeAsset.objects.count(), AssetOwnership.objects.count(), InventoryItem.objects.count(),
            ProvenanceEvent.objects.count())


def test_a_provider_registers_a_co_owned_asset_once(provider, device_type):
    partner = OrganisationFactory(kind="provider", name="Partner Compute")
    client = provide_client(provider)
    body = _body(device_type, owners=[{"organisation": provider.organisation_id, "share_bp": 6500},
                                      {"organisation_name": "Partner Compute", "share_bp": 3500}])
    first = client.post("/api/v1/assets/", body, format="json", HTTP_IDEMPOTENCY_KEY="asset-1")
    again = client.post("/api/v1/assets/", body, format="json", HTTP_IDEMPOTENCY_KEY="asset-1")
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    data = first.json()
    assert data["hub"] == "GS" and data["inventory"][0]["count"] == 64
    assert [(o["organisation"]["id"], o["share_bp"]) for o in data["owners"][0]["owners"]] == [
        (provider.organisation_id, 6500), (partner.id, 3500)]
    assert ComputeAsset.objects.count() == 1
    assert_error(client.post("/api/v1/assets/", _body(device_type, pue="1.30"), format="json", HTTP_IDEMPOTENCY_KEY="asset-1"),
                 409, "idempotency_key_reused")
    assert_error(client.post("/api/v1/assets/", body, format="json"), 409, "asset_exists")


@pytest.mark.parametrize(
    "changes, code, field",
    [
        ({"owners": [{"organisation_name": "Mine", "share_bp": 9000}]}, "shares_invalid", "owners"),
        ({"owners": [{"organisation_name": "Mine", "share_bp": 5000}, {"organisation_name": "Mine", "share_bp": 5000}]},
         "shares_invalid", "owners.1.organisation"),
        ({"owners": [{"organisation_name": "Nobody", "share_bp": 10000}]}, "invalid", "owners.0.organisation"),
        ({"owners": [{"share_bp": 10000}]}, "invalid", "owners.0.non_field_errors"),
        ({"owners": [{"organisation_name": "Mine", "share_bp": 10001}]}, "invalid", "owners.0.share_bp"),
        ({"cluster": "XX-YY"}, "invalid", "cluster"),
        ({"hub": "NX"}, "invalid", "hub"),
        ({"pue": "0.90"}, "invalid", "pue"),
        ({"pue": "1.234"}, "invalid", "pue"),
        ({"green_share": "101"}, "invalid", "green_share"),
        ({"name": ""}, "invalid", "name"),
        ({"inventory": [{"device_type": 999999, "count": 1}]}, "invalid", "inventory.0.device_type"),
        ({"inventory": [{"device_type": 1, "count": 0}]}, "invalid", "inventory.0.count"),
        ({"inventory": "many"}, "invalid", "inventory"),
    ],
)
def test_bad_assets_are_400_and_nothing_is_written(provider, device_type, changes, code, field):
    Organisation.objects.filter(pk=provider.organisation_id).update(name="Mine")
    before = _written()
    error = assert_error(provide_client(provider).post("/api/v1/assets/", _body(device_type, **changes), format="json"), 400, code)
    assert any(key.startswith(field) for key in error["fields"]), error
    assert _written() == before


def test_only_providers_register_assets(buyer, attestor, device_type):
    assert_error(token_client(buyer).post("/api/v1/assets/", _body(device_type), format="json"), 403, "scope_missing")
    assert_error(provide_client(attestor).post("/api/v1/assets/", _body(device_type), format="json"), 403, "not_a_provider")
    assert not ComputeAsset.objects.exists()


def test_a_pending_provider_sets_up_but_a_suspended_one_cannot(provider, device_type):
    Organisation.objects.filter(pk=provider.organisation_id).update(kyc_status="pending")
    client = provide_client(provider)
    assert client.post("/api/v1/assets/", _body(device_type), format="json").status_code == 201
    Organisation.objects.filter(pk=provider.organisation_id).update(kyc_status="suspended")
    assert_error(client.post("/api/v1/assets/", _body(device_type, name="Second"), format="json"), 403, "organisation_suspended")
    assert ComputeAsset.objects.count() == 1


def test_a_provider_cannot_see_or_touch_another_providers_asset(asset, device_type):
    intruder = provide_client(MembershipFactory(organisation__kind="provider", role="provider_admin"))
    before = _written(), ComputeAsset.objects.values().get(pk=asset.pk)
    assert intruder.get("/api/v1/assets/").json()["results"] == []
    assert_error(intruder.get(f"/api/v1/assets/{asset.id}/"), 404)
    assert_error(intruder.get(f"/api/v1/assets/{asset.id}/owners/"), 404)
    assert_error(intruder.get(f"/api/v1/assets/{asset.id}/inventory/"), 404)
    assert_error(intruder.patch(f"/api/v1/assets/{asset.id}/", {"pue": "1.01"}, format="json"), 404)
    mine = intruder.get("/api/v1/me/").json()["organisation"]["id"]
    assert_error(intruder.post(f"/api/v1/assets/{asset.id}/owners/", {"owners": [{"organisation": mine, "share_bp": 10000}]},
                               format="json"), 404)
    assert_error(intruder.post(f"/api/v1/assets/{asset.id}/inventory/", {"device_type": device_type.id, "count": 1},
                               format="json"), 404)
    assert (_written(), ComputeAsset.objects.values().get(pk=asset.pk)) == before


def test_the_regulator_reads_every_asset_but_changes_none(asset, regulator):
    client = token_client(regulator, scopes=("read",))
    assert [a["id"] for a in client.get("/api/v1/assets/").json()["results"]] == [asset.id]
    assert client.get(f"/api/v1/assets/{asset.id}/").status_code == 200
    assert_error(client.patch(f"/api/v1/assets/{asset.id}/", {"pue": "1.01"}, format="json"), 403, "scope_missing")


def test_editing_an_asset(asset, provider):
    client = provide_client(provider)
    response = client.patch(f"/api/v1/assets/{asset.id}/", {"description": "Retrofitted", "pue": "1.12"}, format="json")
    assert response.status_code == 200 and response.json()["pue"] == "1.12"
    assert response.json()["hub"] == "NX"
    for bad, field in (({"pue": "9"}, "pue"), ({"name": ""}, "name"), ({"green_share": "x"}, "green_share")):
        assert field in assert_error(client.patch(f"/api/v1/assets/{asset.id}/", bad, format="json"), 400, "invalid")["fields"]
    assert client.get("/api/v1/assets/", {"hub": "GS"}).json()["results"] == []
    assert_error(client.get("/api/v1/assets/", {"hub": "x" * 20}), 400, "invalid")


def test_changing_owners_through_the_api(asset, provider):
    partner = OrganisationFactory(kind="provider")
    client = provide_client(provider)
    body = {"owners": [{"organisation": provider.organisation_id, "share_bp": 5000}, {"organisation": partner.id, "share_bp": 5000}],
            "effective_from": "2099-01-01T00:00:00+08:00"}
    first = client.post(f"/api/v1/assets/{asset.id}/owners/", body, format="json", HTTP_IDEMPOTENCY_KEY="own-1")
    again = client.post(f"/api/v1/assets/{asset.id}/owners/", body, format="json", HTTP_IDEMPOTENCY_KEY="own-1")
    assert first.status_code == again.status_code == 201
    assert [len(s["owners"]) for s in first.json()] == [2, 1]
    assert AssetOwnership.objects.filter(asset=asset).count() == 3
    assert len(client.get(f"/api/v1/assets/{asset.id}/owners/").json()) == 2
    bad = {"owners": [{"organisation": partner.id, "share_bp": 4000}]}
    assert_error(client.post(f"/api/v1/assets/{asset.id}/owners/", bad, format="json"), 400, "shares_invalid")
    past = {**body, "effective_from": "2001-01-01T00:00:00Z"}
    assert_error(client.post(f"/api/v1/assets/{asset.id}/owners/", past, format="json"), 400, "effective_in_past")
    assert_error(client.post(f"/api/v1/assets/{asset.id}/owners/", {"owners": []}, format="json"), 400, "invalid")
    assert AssetOwnership.objects.filter(asset=asset).count() == 3


def test_setting_inventory_through_the_api(asset, provider, device_type, listing):
    client = provide_client(provider)
    body = {"device_type": device_type.id, "count": 120}
    first = client.post(f"/api/v1/assets/{asset.id}/inventory/", body, format="json", HTTP_IDEMPOTENCY_KEY="inv-1")
    again = client.post(f"/api/v1/assets/{asset.id}/inventory/", body, format="json", HTTP_IDEMPOTENCY_KEY="inv-1")
    assert first.status_code == again.status_code == 201 and first.json()[0]["count"] == 120
    assert ProvenanceEvent.objects.filter(asset=asset, kind="inventory_changed").count() == 1
    assert_error(client.post(f"/api/v1/assets/{asset.id}/inventory/", {"device_type": device_type.id, "count": 39},
                             format="json"), 422, "inventory_below_listed")
    assert_error(client.post(f"/api/v1/assets/{asset.id}/inventory/", {"device_type": 999999, "count": 1}, format="json"),
                 400, "invalid")
    assert_error(client.post(f"/api/v1/assets/{asset.id}/inventory/", {"device_type": device_type.id, "count": -1},
                             format="json"), 400, "invalid")
    assert client.get(f"/api/v1/assets/{asset.id}/inventory/").json()[0]["count"] == 120


def test_anyone_follows_an_assets_provenance(api, asset, listing):
    response = api.get(f"/api/v1/assets/{asset.id}/provenance/")
    assert response.status_code == 200
    events = response.json()["results"]
    assert [e["kind"] for e in events] == ["attestation_added", "asset_registered", "listing_created"]
    assert all(e["problem"] is None for e in events)
    assert_error(api.get("/api/v1/assets/999999/provenance/"), 404, "not_found")
    chain = api.get("/api/v1/provenance/verify/").json()
    assert chain["ok"] and chain["first_broken"] is None and chain["checked"] == ProvenanceEvent.objects.count()
    assert_error(api.get(f"/api/v1/assets/{asset.id}/provenance/", {"cursor": "garbage"}), 404)
