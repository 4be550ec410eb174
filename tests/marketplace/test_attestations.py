import copy
from decimal import Decimal

import pytest

from exchange.errors import AppError
from marketplace.models import Attestation, ProvenanceEvent
from marketplace.selectors import attestation_check, attestation_latest_valid, device_type_factors, compute_class_list
from marketplace.services import (
    asset_update,
    attestation_add,
    attestor_key_register,
    device_type_update,
    listing_change,
)
from marketplace.signing import canonical_json, public_key_b64, sign, signature_valid
from tests.factories import DeviceTypeFactory, OrganisationFactory, attestation_payload, attestor_private_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_device(catalogue):
    return DeviceTypeFactory()


def _post(key, private_key, device_type, sign_with=None, tamper=None, **figures):
    payload = attestation_payload(key_id=key.key_id, device_type=device_type, **figures)
    signature = sign(sign_with or private_key, payload)
    if tamper:
        payload = tamper(copy.deepcopy(payload))
    return attestation_add(attestor=key.organisation, payload=payload, signature=signature)


def test_a_good_signature_is_accepted_and_verifies_for_anyone(attestor_key, fresh_device):
    key, private_key = attestor_key
    attestation = _post(key, private_key, fresh_device)
    check = attestation_check(attestation)
    assert check.valid and check.signature_ok and check.hardware_ok
    # Offline: only the public key, the stored payload and the signature are needed.
    assert signature_valid(public_key_b64=key.public_key, payload=attestation.payload, signature_b64=attestation.signature)
    assert attestation.sustained_fp16_pflops == Decimal("0.8000")
    event = ProvenanceEvent.objects.get(kind="attestation_added", device_type=fresh_device)
    assert event.payload["attestation"] == attestation.id


def test_a_tampered_payload_is_rejected(attestor_key, fresh_device):
    key, private_key = attestor_key

    def raise_figure(payload):
        payload["sustained_pflops"]["fp16"] = "0.9000"
        return payload

    with pytest.raises(AppError) as err:
        _post(key, private_key, fresh_device, tamper=raise_figure)
    assert err.value.code == "signature_invalid"
    assert not Attestation.objects.filter(device_type=fresh_device).exists()


def test_a_signature_by_another_key_is_rejected(attestor_key, fresh_device):
    key, private_key = attestor_key
    with pytest.raises(AppError) as err:
        _post(key, private_key, fresh_device, sign_with=attestor_private_key(7))
    assert err.value.code == "signature_invalid"


def test_a_stored_attestation_whose_row_was_edited_no_longer_verifies(attestor_key, fresh_device):
    key, private_key = attestor_key
    attestation = _post(key, private_key, fresh_device)
    payload = attestation.payload
    payload["sustained_pflops"]["fp16"] = "0.9500"
    Attestation.objects.filter(pk=attestation.pk).update(payload=payload)
    attestation = Attestation.objects.select_related("key", "device_type").get(pk=attestation.pk)
    assert not attestation_check(attestation).signature_ok


def test_another_attestors_key_cannot_be_used(attestor_key, fresh_device):
    key, private_key = attestor_key
    other = OrganisationFactory(kind="attestor")
    payload = attestation_payload(key_id=key.key_id, device_type=fresh_device)
    with pytest.raises(AppError) as err:
        attestation_add(attestor=other, payload=payload, signature=sign(private_key, payload))
    assert err.value.code == "not_your_key" and err.value.status_code == 403


@pytest.mark.parametrize(
    "figures, code",
    [
        ({"fp16": "1.3000"}, "sustained_exceeds_peak"),
        ({"fp16": "0"}, "invalid"),
        ({"fp16": "0.12345"}, "invalid"),
        ({"fp16": "1e999999"}, "invalid"),
        ({"fp16": "NaN"}, "invalid"),
        ({"fp16": "-0.5"}, "invalid"),
        ({"fp16": None, "fp64": None}, "invalid"),
        ({"measured_on": "2999-01-01"}, "invalid"),
        ({"measured_on": "yesterday"}, "invalid"),
        ({"method": ""}, "invalid"),
    ],
)
def test_implausible_attestations_are_rejected(attestor_key, fresh_device, figures, code):
    key, private_key = attestor_key
    with pytest.raises(AppError) as err:
        _post(key, private_key, fresh_device, **figures)
    assert err.value.code == code


def test_floats_in_the_payload_are_refused_before_they_can_be_signed_ambiguously(attestor_key, fresh_device):
    key, private_key = attestor_key
    payload = attestation_payload(key_id=key.key_id, device_type=fresh_device)
    payload["sustained_pflops"]["fp16"] = 0.8
    with pytest.raises(AppError) as err:
        attestation_add(attestor=key.organisation, payload=payload, signature="AAAA")
    assert err.value.code == "invalid"


def test_a_key_must_be_ed25519(attestor):
    with pytest.raises(AppError) as err:
        attestor_key_register(organisation=attestor.organisation, public_key="bm90IGEga2V5")
    assert "public_key" in err.value.fields
    pem = (
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\n"
        "q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(AppError):
        attestor_key_register(organisation=attestor.organisation, public_key=pem)


def test_the_factor_comes_from_the_latest_valid_attestation_not_the_vendor_peak(attestor_key, fresh_device):
    key, private_key = attestor_key
    _post(key, private_key, fresh_device, fp16="0.8000", measured_on="2026-01-01")
    newer = _post(key, private_key, fresh_device, fp16="0.7800", measured_on="2026-02-01")
    latest = attestation_latest_valid(device_type=fresh_device, precision="fp16")
    assert latest == newer and latest.sustained_fp16_pflops == Decimal("0.7800")
    assert fresh_device.peak_fp16_pflops == Decimal("1.2500")
    factors = {f.compute_class.code: f for f in device_type_factors(
        device_type=fresh_device, classes=compute_class_list(), attestations=list(Attestation.objects.select_related("key", "device_type")))}
    assert factors["AI80"].factor == Decimal("0.7800") and factors["AI80"].qualifies
    assert not factors["CPU"].qualifies and "memory_gb" in factors["CPU"].gaps


def test_changing_hardware_facts_voids_attestations_and_unvoids_nothing_else(attestor_key, fresh_device):
    key, private_key = attestor_key
    attestation = _post(key, private_key, fresh_device)
    device_type_update(device_type=fresh_device, organisation=fresh_device.registered_by, peak_fp16_pflops="1.3000")
    assert attestation_latest_valid(device_type=fresh_device, precision="fp16") == attestation
    device_type_update(device_type=fresh_device, organisation=fresh_device.registered_by, memory_gb=64)
    assert attestation_latest_valid(device_type=fresh_device, precision="fp16") is None
    attestation.refresh_from_db()
    assert not attestation_check(Attestation.objects.select_related("key", "device_type").get(pk=attestation.pk)).hardware_ok
    assert ProvenanceEvent.objects.filter(kind="device_type_changed", device_type=fresh_device).count() == 1


def test_only_the_registrant_changes_a_device_type(fresh_device):
    with pytest.raises(AppError) as err:
        device_type_update(device_type=fresh_device, organisation=OrganisationFactory(), memory_gb=1)
    assert err.value.code == "not_your_device_type"


def test_editing_a_listing_or_an_asset_does_not_void_its_attestation(listing, asset):
    listing_change(listing=listing, reserve_price="12.00", device_count=20)
    asset_update(asset=asset, description="Liquid cooling retrofitted", pue="1.12")
    check = attestation_check(Attestation.objects.select_related("key", "device_type").get(pk=listing.attestation_id))
    assert check.valid


def test_the_canonical_form_is_sorted_compact_utf8():
    assert canonical_json({"b": "中卫", "a": [1, {"d": None, "c": "0.75"}]}) == '{"a":[1,{"c":"0.75","d":null}],"b":"中卫"}'.encode()
    with pytest.raises(TypeError):
        canonical_json({"x": 0.75})


def test_public_keys_are_accepted_as_pem(attestor):
    from cryptography.hazmat.primitives import serialization

    private_key = attestor_private_key(9)
    pem = private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    key = attestor_key_register(organisation=attestor.organisation, public_key=pem.decode())
    assert key.public_key == public_key_b64(private_key)
