import copy

import pytest

from accounts.models import Organisation
from marketplace.models import Attestation, AttestorKey, DeviceType
from marketplace.signing import public_key_b64, sign
from tests.conftest import token_client
from tests.factories import DeviceTypeFactory, attestation_payload, attestor_private_key
from tests.marketplace.helpers import assert_error, provide_client

pytestmark = pytest.mark.django_db

DEVICE = {"vendor": "Hanxin Semiconductor", "model": "HX-910", "memory_gb": 96, "interconnect_gbps": 200,
          "peak_fp16_pflops": "1.0000", "peak_fp32_pflops": "0.1000"}


def test_a_provider_registers_a_device_type_once(provider, catalogue):
    client = provide_client(provider)
    first = client.post("/api/v1/device-types/", DEVICE, format="json", HTTP_IDEMPOTENCY_KEY="dt-1")
    again = client.post("/api/v1/device-types/", DEVICE, format="json", HTTP_IDEMPOTENCY_KEY="dt-1")
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert DeviceType.objects.filter(model="HX-910").count() == 1
    factors = {f["compute_class"]: f for f in first.json()["factors"]}
    assert factors["AI80"] == {"compute_class": "AI80", "qualifies": False, "factor": None, "attestation": None, "gaps": {}}
    assert_error(client.post("/api/v1/device-types/", {**DEVICE, "memory_gb": 80}, format="json", HTTP_IDEMPOTENCY_KEY="dt-1"),
                 409, "idempotency_key_reused")
    assert_error(client.post("/api/v1/device-types/", DEVICE, format="json"), 409, "device_type_exists")


@pytest.mark.parametrize(
    "changes, field",
    [({"memory_gb": "lots"}, "memory_gb"), ({"memory_gb": 0}, "memory_gb"), ({"vendor": ""}, "vendor"),
     ({"peak_fp16_pflops": "1.23456"}, "peak_fp16_pflops"), ({"peak_fp16_pflops": "-1"}, "peak_fp16_pflops"),
     ({"model": None}, "model")],
)
def test_bad_device_types_are_400(provider, catalogue, changes, field):
    response = provide_client(provider).post("/api/v1/device-types/", {**DEVICE, **changes}, format="json")
    assert field in assert_error(response, 400, "invalid")["fields"]
    assert not DeviceType.objects.exists()


def test_buyers_and_read_only_tokens_cannot_register_device_types(buyer, provider, catalogue):
    assert_error(token_client(buyer).post("/api/v1/device-types/", DEVICE, format="json"), 403, "scope_missing")
    assert_error(token_client(provider, scopes=("read",)).post("/api/v1/device-types/", DEVICE, format="json"), 403, "scope_missing")
    assert not DeviceType.objects.exists()


def test_device_types_are_public_with_their_factors(api, device_type, django_assert_max_num_queries):
    DeviceTypeFactory.create_batch(5)
    with django_assert_max_num_queries(4):
        response = api.get("/api/v1/device-types/")
    assert response.status_code == 200
    row = next(d for d in response.json()["results"] if d["id"] == device_type.id)
    factors = {f["compute_class"]: f for f in row["factors"]}
    assert factors["AI80"]["factor"] == "0.8000" and factors["AI80"]["qualifies"]
    assert factors["CPU"] == {"compute_class": "CPU", "qualifies": False, "factor": None, "attestation": None,
                              "gaps": {"memory_gb": "80 GB < 256 GB"}}
    assert api.get(f"/api/v1/device-types/{device_type.id}/").json()["model"] == device_type.model
    assert_error(api.get("/api/v1/device-types/999999/"), 404, "not_found")


def test_only_the_registrant_corrects_a_device_type(provider, catalogue):
    device_type = DeviceTypeFactory()
    other = provide_client(provider)
    assert_error(other.patch(f"/api/v1/device-types/{device_type.id}/", {"memory_gb": 1}, format="json"), 403, "not_your_device_type")
    device_type.refresh_from_db()
    assert device_type.memory_gb == 80
    owner = provide_client(_membership_of(device_type.registered_by))
    assert_error(owner.patch(f"/api/v1/device-types/{device_type.id}/", {"memory_gb": -1}, format="json"), 400, "invalid")
    response = owner.patch(f"/api/v1/device-types/{device_type.id}/", {"memory_gb": 64}, format="json")
    assert response.status_code == 200 and response.json()["memory_gb"] == 64


def _membership_of(organisation):
    from tests.factories import MembershipFactory

    return MembershipFactory(organisation=organisation, role="provider_admin")


def test_an_attestor_registers_its_key_and_posts_signed_attestations(attestor, catalogue):
    client = provide_client(attestor)
    private_key = attestor_private_key(3)
    body = {"public_key": public_key_b64(private_key)}
    first = client.post("/api/v1/attestor-keys/", body, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    again = client.post("/api/v1/attestor-keys/", body, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == again.status_code == 201 and AttestorKey.objects.count() == 1
    assert_error(client.post("/api/v1/attestor-keys/", body, format="json"), 409, "key_exists")
    key_id = first.json()["key_id"]

    device_type = DeviceTypeFactory()
    payload = attestation_payload(key_id=key_id, device_type=device_type)
    signed = {"payload": payload, "signature": sign(private_key, payload)}
    created = client.post("/api/v1/attestations/", signed, format="json", HTTP_IDEMPOTENCY_KEY="att-1")
    replay = client.post("/api/v1/attestations/", signed, format="json", HTTP_IDEMPOTENCY_KEY="att-1")
    assert created.status_code == replay.status_code == 201 and created.json()["id"] == replay.json()["id"]
    assert Attestation.objects.count() == 1
    assert created.json()["valid"] is True and created.json()["sustained_pflops"]["fp16"] == "0.8000"
    assert_error(client.post("/api/v1/attestations/", signed, format="json"), 409, "attestation_exists")
    tampered = copy.deepcopy(signed)
    tampered["payload"]["sustained_pflops"]["fp16"] = "0.9000"
    assert_error(client.post("/api/v1/attestations/", tampered, format="json", HTTP_IDEMPOTENCY_KEY="att-1"),
                 409, "idempotency_key_reused")


def test_everyone_verifies_an_attestation(api, device_type):
    attestation = Attestation.objects.get(device_type=device_type)
    detail = api.get(f"/api/v1/attestations/{attestation.id}/").json()
    assert detail["canonical_payload"].startswith('{"device_type":{')
    verified = api.get(f"/api/v1/attestations/{attestation.id}/verify/").json()
    assert verified["valid"] and verified["signature_ok"] and verified["hardware_ok"]
    DeviceType.objects.filter(pk=device_type.pk).update(interconnect_gbps=100)
    verified = api.get(f"/api/v1/attestations/{attestation.id}/verify/").json()
    assert verified["signature_ok"] and not verified["hardware_ok"] and not verified["valid"]
    assert [a["id"] for a in api.get("/api/v1/attestations/", {"device_type": device_type.id}).json()["results"]] == [attestation.id]
    assert api.get("/api/v1/attestor-keys/").json()["results"][0]["public_key"] == detail["public_key"]
    assert_error(api.get("/api/v1/attestations/999999/verify/"), 404, "not_found")
    assert_error(api.get("/api/v1/attestations/999999/"), 404, "not_found")
    assert_error(api.get("/api/v1/attestations/", {"device_type": "x"}), 400, "invalid")


@pytest.mark.parametrize(
    "mutate, status, code",
    [
        (lambda body, other: body["payload"]["sustained_pflops"].update(fp16="0.9000"), 400, "signature_invalid"),
        (lambda body, other: body.update(signature=sign(other, body["payload"])), 400, "signature_invalid"),
        (lambda body, other: body.update(signature="not base64!"), 400, "signature_invalid"),
        (lambda body, other: body["payload"].pop("method"), 400, "invalid"),
        (lambda body, other: body.pop("payload"), 400, "invalid"),
        (lambda body, other: body["payload"].update(key_id="0000000000000000"), 400, "unknown_key"),
        (lambda body, other: body.update(payload="[]"), 400, "invalid"),
        (lambda body, other: body["payload"]["sustained_pflops"].update(fp16="1e999999"), 400, "signature_invalid"),
        (lambda body, other: body["payload"]["device_type"].update(id="abc"), 400, "signature_invalid"),
    ],
)
def test_bad_attestations_are_refused_and_nothing_is_written(attestor_key, catalogue, mutate, status, code):
    key, private_key = attestor_key
    device_type = DeviceTypeFactory()
    payload = attestation_payload(key_id=key.key_id, device_type=device_type)
    body = {"payload": payload, "signature": sign(private_key, payload)}
    mutate(body, attestor_private_key(42))
    from tests.factories import MembershipFactory

    client = provide_client(MembershipFactory(organisation=key.organisation, role="provider_admin"))
    assert_error(client.post("/api/v1/attestations/", body, format="json"), status, code)
    assert not Attestation.objects.filter(device_type=device_type).exists()


def test_hardware_facts_must_match_what_is_registered(attestor_key, catalogue):
    key, private_key = attestor_key
    device_type = DeviceTypeFactory()
    payload = attestation_payload(key_id=key.key_id, device_type=device_type)
    payload["device_type"]["memory_gb"] = 141
    from tests.factories import MembershipFactory

    client = provide_client(MembershipFactory(organisation=key.organisation, role="provider_admin"))
    assert_error(client.post("/api/v1/attestations/", {"payload": payload, "signature": sign(private_key, payload)},
                             format="json"), 422, "hardware_mismatch")


def test_only_verified_attestors_attest(provider, attestor, attestor_key, catalogue):
    key, private_key = attestor_key
    device_type = DeviceTypeFactory()
    payload = attestation_payload(key_id=key.key_id, device_type=device_type)
    body = {"payload": payload, "signature": sign(private_key, payload)}
    assert_error(provide_client(provider).post("/api/v1/attestations/", body, format="json"), 403, "not_an_attestor")
    assert_error(provide_client(provider).post("/api/v1/attestor-keys/", {"public_key": key.public_key}, format="json"),
                 403, "not_an_attestor")
    Organisation.objects.filter(pk=attestor.organisation_id).update(kyc_status="pending")
    assert_error(provide_client(attestor).post("/api/v1/attestations/", body, format="json"), 403, "kyc_pending")
    assert_error(token_client(attestor, scopes=("read",)).post("/api/v1/attestations/", body, format="json"), 403, "scope_missing")
    assert not Attestation.objects.filter(device_type=device_type).exists()


def test_bad_keys_are_400(attestor):
    client = provide_client(attestor)
    for bad in ("", "bm90IGEga2V5", "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"):
        assert_error(client.post("/api/v1/attestor-keys/", {"public_key": bad}, format="json"), 400, "invalid")
    assert not AttestorKey.objects.exists()

