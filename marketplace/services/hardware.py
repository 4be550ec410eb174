"""Device types, attestor keys and signed attestations."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organisation
from exchange.errors import AppError, Forbidden
from marketplace.models import Attestation, AttestorKey, DeviceType, Precision, ProvenanceEvent
from marketplace.services.common import FACTOR_PLACES, UNPROCESSABLE, checked_decimal
from marketplace.services.provenance import provenance_append
from marketplace.signing import b64encode, canonical_json, key_id_for, public_key_raw, sha256_hex, signature_valid

PEAK_FIELDS = ("peak_fp32_pflops", "peak_fp16_pflops", "peak_fp64_pflops")


def _device_values(values: dict) -> dict:
    out = {}
    for field in ("vendor", "model"):
        if field in values:
            text = (values[field] or "").strip()
            if not text:
                raise AppError("invalid", f"{field} is required.", fields={field: "Required."})
            out[field] = text
    for field in ("memory_gb", "interconnect_gbps"):
        if field in values:
            if not isinstance(values[field], int) or values[field] < 1:
                raise AppError("invalid", f"{field} must be a positive whole number.", fields={field: "Positive integer."})
            out[field] = values[field]
    for field in PEAK_FIELDS:
        if field in values:
            out[field] = None if values[field] is None else checked_decimal(
                values[field], field=field, places=FACTOR_PLACES, low=Decimal(0), high=Decimal(1000), low_inclusive=False)
    return out


@transaction.atomic
def device_type_register(*, organisation: Organisation, vendor: str, model: str, memory_gb: int,
                         interconnect_gbps: int, **peaks) -> DeviceType:
    values = _device_values({"vendor": vendor, "model": model, "memory_gb": memory_gb,
                             "interconnect_gbps": interconnect_gbps, **peaks})
    if DeviceType.objects.filter(vendor__iexact=values["vendor"], model__iexact=values["model"]).exists():
        raise AppError("device_type_exists", f"{values['vendor']} {values['model']} is already registered; use it.",
                       fields={"model": "Already registered."}, status_code=409)
    return DeviceType.objects.create(registered_by=organisation, **values)


@transaction.atomic
def device_type_update(*, device_type: DeviceType, organisation: Organisation, **changes) -> DeviceType:
    """Changing a hardware fact voids every attestation of the device type (they signed the old facts).

    Listings keep the factor they were made with; new listings need a new attestation.
    """
    if device_type.registered_by_id != organisation.id:
        raise Forbidden("Only the organisation that registered a device type changes it.", code="not_your_device_type")
    device_type = DeviceType.objects.select_for_update().get(pk=device_type.pk)
    values = _device_values(changes)
    before = device_type.hardware_facts()
    if {"vendor", "model"} & values.keys() and DeviceType.objects.filter(
        vendor__iexact=values.get("vendor", device_type.vendor), model__iexact=values.get("model", device_type.model)
    ).exclude(pk=device_type.pk).exists():
        raise AppError("device_type_exists", "Another device type has that vendor and model.",
                       fields={"model": "Already registered."}, status_code=409)
    for field, value in values.items():
        setattr(device_type, field, value)
    device_type.save()
    after = device_type.hardware_facts()
    if after != before:
        provenance_append(asset=None, device_type=device_type, kind=ProvenanceEvent.Kind.DEVICE_TYPE_CHANGED,
                          payload={"before": before, "after": after, "by": organisation.id})
    return device_type


# ------------------------------------------------------------------------- attestations


def attestor_key_register(*, organisation: Organisation, public_key: str) -> AttestorKey:
    try:
        raw = public_key_raw(public_key)
    except ValueError as exc:
        raise AppError("invalid", f"The public key is not usable: {exc}.",
                       fields={"public_key": "An Ed25519 public key: PEM, or base64 of the 32 raw bytes."}) from None
    key_id = key_id_for(raw)
    if AttestorKey.objects.filter(key_id=key_id).exists():
        raise AppError("key_exists", "This public key is already registered.", fields={"public_key": "Already registered."},
                       status_code=409)
    return AttestorKey.objects.create(organisation=organisation, key_id=key_id, public_key=b64encode(raw))


ATTESTATION_KEYS = {"key_id", "device_type", "method", "measured_on", "sustained_pflops"}


def _attestation_figures(payload: dict, device_type: DeviceType) -> dict[str, Decimal | None]:
    figures = payload["sustained_pflops"]
    if not isinstance(figures, dict) or set(figures) - set(Precision.values):
        raise AppError("invalid", "sustained_pflops maps fp32, fp16 and fp64 to decimal strings.",
                       fields={"payload.sustained_pflops": "Keys fp32, fp16, fp64."})
    out = {}
    for precision in Precision.values:
        value = figures.get(precision)
        field = f"payload.sustained_pflops.{precision}"
        out[precision] = None if value is None else checked_decimal(
            value, field=field, places=FACTOR_PLACES, low=Decimal(0), high=Decimal(1000), low_inclusive=False)
        peak = getattr(device_type, f"peak_{precision}_pflops")
        if out[precision] is not None and peak is not None and out[precision] > peak:
            raise AppError(
                "sustained_exceeds_peak",
                f"The sustained {precision} figure {out[precision]} exceeds the vendor's peak {peak}; check the measurement.",
                fields={field: f"Above the peak {peak}."}, status_code=UNPROCESSABLE,
            )
    if all(v is None for v in out.values()):
        raise AppError("invalid", "An attestation reports at least one precision.",
                       fields={"payload.sustained_pflops": "At least one figure."})
    return out


@transaction.atomic
def attestation_add(*, attestor: Organisation, payload: dict, signature: str, today: date | None = None) -> Attestation:
    """Record a signed benchmark result after checking its signature and hardware facts."""
    if not isinstance(payload, dict) or set(payload) != ATTESTATION_KEYS:
        raise AppError("invalid", f"The payload has exactly the keys {', '.join(sorted(ATTESTATION_KEYS))}.",
                       fields={"payload": "Wrong keys."})
    key = AttestorKey.objects.filter(key_id=payload["key_id"]).first() if isinstance(payload["key_id"], str) else None
    if key is None:
        raise AppError("unknown_key", "No attestor key has that key_id; register the public key first.",
                       fields={"payload.key_id": "Unknown key."})
    if key.organisation_id != attestor.id:
        raise Forbidden("That key belongs to another attestor.", code="not_your_key")
    try:
        canonical_json(payload)
    except TypeError:
        raise AppError("invalid", "Send decimal figures as strings such as \"0.7500\", not floating point numbers.",
                       fields={"payload.sustained_pflops": "Decimals as strings."}) from None
    if not signature_valid(public_key_b64=key.public_key, payload=payload, signature_b64=signature):
        raise AppError(
            "signature_invalid",
            "The signature does not verify with this key over the canonical JSON of the payload "
            "(UTF-8, keys sorted, no whitespace).",
            fields={"signature": "Does not verify."},
        )
    facts = payload["device_type"]
    known_id = isinstance(facts, dict) and type(facts.get("id")) is int
    device_type = DeviceType.objects.filter(pk=facts["id"]).first() if known_id else None
    if device_type is None:
        raise AppError("invalid", "payload.device_type.id names no device type.", fields={"payload.device_type": "Unknown."})
    if facts != device_type.hardware_facts():
        raise AppError(
            "hardware_mismatch",
            "The signed hardware facts differ from the device type's current facts; attest the hardware as registered.",
            fields={"payload.device_type": f"Expected {device_type.hardware_facts()}."}, status_code=UNPROCESSABLE,
        )
    try:
        measured_on = date.fromisoformat(payload["measured_on"]) if isinstance(payload["measured_on"], str) else None
    except ValueError:
        measured_on = None
    if measured_on is None or measured_on > (today or timezone.localdate()):
        raise AppError("invalid", "measured_on is a past date, YYYY-MM-DD.", fields={"payload.measured_on": "A past date."})
    method = payload["method"]
    if not isinstance(method, str) or not method.strip() or len(method) > 300:
        raise AppError("invalid", "method describes the benchmark (1–300 characters).", fields={"payload.method": "Required."})
    figures = _attestation_figures(payload, device_type)
    try:
        with transaction.atomic():
            attestation = Attestation.objects.create(
                device_type=device_type, attestor=attestor, key=key, method=method, measured_on=measured_on,
                sustained_fp32_pflops=figures["fp32"], sustained_fp16_pflops=figures["fp16"],
                sustained_fp64_pflops=figures["fp64"], payload=payload, signature=signature,
            )
    except IntegrityError:
        raise AppError("attestation_exists", "This signed attestation is already recorded.", status_code=409) from None
    provenance_append(
        asset=None, device_type=device_type, kind=ProvenanceEvent.Kind.ATTESTATION_ADDED,
        payload={"attestation": attestation.id, "attestor": attestor.id, "key_id": key.key_id,
                 "payload_sha256": sha256_hex(canonical_json(payload)), "signature": signature,
                 "hardware": facts, "sustained_pflops": figures},
    )
    return attestation
