"""Demo market: attested hardware, co-owned assets in the western hubs, listings for the coming week.

Idempotent: a second run on the same day changes nothing; a run on a later day lists the
days that have come into the seven-day horizon. In demo mode it adds the demo class, whose
delivery windows last minutes, and lists the assets' spare devices in it for the next
hours; the market simulator keeps that listing going (``demo_listings_extend``).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.utils import timezone

from accounts.models import Organisation
from exchange.errors import AppError
from marketplace.catalogue import catalogue_load
from marketplace.models import Attestation, AttestorKey, Cluster, ComputeAsset, ComputeClass, DeviceType, Hub, Listing
from marketplace.periods import DEMO_CLASS_CODE, china_midnight, china_today, class_period, is_demo_class, period_containing
from marketplace.services import (
    asset_register,
    attestation_add,
    attestor_key_register,
    device_type_register,
    listing_create,
)
from marketplace.signing import key_id_for, public_key_b64, sign

log = logging.getLogger("marketplace.demo")

ATTESTOR = "China Compute Benchmark Centre"
HORIZON_DAYS = 7

# (registrant, vendor, model, memory GB, interconnect Gbit/s, vendor peaks fp32/fp16/fp64,
#  attested sustained fp32/fp16/fp64, method). The domestic HX-910 claims a peak 0.8 of the
#  A80's but sustains 0.75 of it once scheduled together: factors come from the attestation.
DEVICE_TYPES = [
    ("West Hub Computing (Ningxia)", "Aurora Silicon", "A80", 80, 400, ("0.0670", "1.2500", "0.0670"),
     ("0.0550", "0.8000", "0.0520"), "Dense BF16 GEMM and HPL, 8-device nodes, 30 min sustained"),
    ("Qingyang Green Compute", "Hanxin Semiconductor", "HX-910", 96, 200, ("0.1000", "1.0000", None),
     ("0.0750", "0.6000", None), "Dense BF16 GEMM, mixed A80/HX-910 job scheduling, 30 min sustained"),
    ("Gui'an Cloud Valley Data Centre", "Aurora Silicon", "L48", 48, 100, ("0.0910", "0.3620", None),
     ("0.0700", "0.2400", None), "Dense FP16 inference GEMM, 30 min sustained"),
    ("Qingyang Green Compute", "Whitebox", "2S-128C CPU node", 512, 100, ("0.0100", None, "0.0050"),
     ("0.0072", None, "0.0034"), "SGEMM and HPL on two-socket nodes"),
]

# (provider, asset, cluster, PUE, green %, inventory {model: count}, owners {organisation: bp},
#  listings [(model, class, devices, reserve price CNY/SCU·h)])
ASSETS = [
    ("West Hub Computing (Ningxia)", "Zhongwei Hall A", "NX-ZW", "1.15", "86.00", {"A80": 512},
     {"West Hub Computing (Ningxia)": 6000, "Qingyang Green Compute": 4000},
     [("A80", "AI80", 256, "15.80"), ("A80", "HPC64", 64, "240.00")]),
    ("Qingyang Green Compute", "Qingyang East Campus", "GS-QY", "1.20", "82.50", {"HX-910": 1024, "2S-128C CPU node": 400},
     {"Qingyang Green Compute": 5000, "West Hub Computing (Ningxia)": 3000, "Gui'an Cloud Valley Data Centre": 2000},
     [("HX-910", "AI80", 512, "11.50"), ("2S-128C CPU node", "CPU", 300, "380.00")]),
    ("Gui'an Cloud Valley Data Centre", "Gui'an Valley Hall 2", "GZ-GA", "1.25", "65.00", {"L48": 256, "A80": 128},
     {"Gui'an Cloud Valley Data Centre": 7000, "West Hub Computing (Ningxia)": 3000},
     [("L48", "AI24", 200, "12.50"), ("A80", "AI80", 128, "16.20")]),
]


# Demo mode only: AI80's requirements, delivered in windows of DEMO_PERIOD_MINUTES (the row's
# period_hours is the catalogue's rule; marketplace.periods.class_period gives the real length).
DEMO_CLASS = {
    "code": DEMO_CLASS_CODE, "category": "ai", "reference_precision": "fp16", "min_memory_gb": 80,
    "min_interconnect_gbps": 200, "period_hours": 1,
    "name_en": "Demo: AI training, minutes-long windows", "name_zh": "演示：AI 训练（分钟级交付窗口）",
    "description_en": "Demo mode only. The requirements of AI80, delivered in windows of a few minutes, so that a "
                      "trade is delivered, metered and settled while you watch.",
    "description_zh": "仅在演示模式中提供。要求与 AI80 相同，但交付窗口只有几分钟，成交后的交付、计量和结算当场可见。",
}
# (provider, asset, model, devices, reserve price CNY/SCU·h): the devices the week's listings
# above leave free, listed in the demo class. Both assets are co-owned, so payouts are split.
DEMO_LISTINGS = [
    ("West Hub Computing (Ningxia)", "Zhongwei Hall A", "A80", 192, "15.80"),
    ("Qingyang Green Compute", "Qingyang East Campus", "HX-910", 512, "11.50"),
]
# Each demo listing covers this many hours; the next is made once less than half is left.
DEMO_LISTING_HOURS = 6


def demo_attestor_key(name: str) -> Ed25519PrivateKey:
    """DEMO ONLY: a key anyone can rebuild from the attestor's name. Real attestors keep theirs offline."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"demo-only attestor key, not secret: {name}".encode()).digest())


def _attest(attestor: Organisation, key: AttestorKey, private_key: Ed25519PrivateKey, device_type: DeviceType,
            sustained: tuple, method: str) -> None:
    if Attestation.objects.filter(device_type=device_type, key=key).exists():
        return
    payload = {
        "key_id": key.key_id,
        "device_type": device_type.hardware_facts(),
        "method": method,
        "measured_on": (china_today(timezone.now()) - timedelta(days=10)).isoformat(),
        "sustained_pflops": dict(zip(("fp32", "fp16", "fp64"), sustained)),
    }
    attestation_add(attestor=attestor, payload=payload, signature=sign(private_key, payload))


def seed(organisations: dict[str, Organisation]) -> dict[str, int]:
    catalogue_load(hub_model=Hub, cluster_model=Cluster, class_model=ComputeClass)
    attestor = organisations[ATTESTOR]
    private_key = demo_attestor_key(attestor.name)
    public_key = public_key_b64(private_key)
    key = AttestorKey.objects.filter(key_id=key_id_for(private_key.public_key().public_bytes_raw())).first()
    if key is None:
        key = attestor_key_register(organisation=attestor, public_key=public_key)

    device_types = {}
    for registrant, vendor, model, memory, interconnect, peaks, sustained, method in DEVICE_TYPES:
        device_type = DeviceType.objects.filter(vendor=vendor, model=model).first()
        if device_type is None:
            device_type = device_type_register(
                organisation=organisations[registrant], vendor=vendor, model=model, memory_gb=memory,
                interconnect_gbps=interconnect,
                **{f"peak_{p}_pflops": v for p, v in zip(("fp32", "fp16", "fp64"), peaks)},
            )
        _attest(attestor, key, private_key, device_type, sustained, method)
        device_types[model] = device_type

    classes = {c.code: c for c in ComputeClass.objects.all()}
    now = timezone.now()
    today = china_today(now)
    horizon_end = china_midnight(today + timedelta(days=HORIZON_DAYS))
    listed = 0
    for provider_name, name, cluster_code, pue, green, inventory, owners, listings in ASSETS:
        provider = organisations[provider_name]
        asset = ComputeAsset.objects.filter(provider=provider, name=name).first()
        if asset is None:
            asset = asset_register(
                provider=provider, name=name, cluster=Cluster.objects.select_related("hub").get(code=cluster_code),
                pue=pue, green_share=green, address=f"{name}, demo campus",
                inventory=[(device_types[model], count) for model, count in inventory.items()],
                owners=[(organisations[org], bp) for org, bp in owners.items()],
            )
        for model, class_code, devices, price in listings:
            covered = (
                Listing.objects.filter(asset=asset, device_type=device_types[model], compute_class=classes[class_code],
                                       status=Listing.Status.ACTIVE)
                .order_by("-window_end").values_list("window_end", flat=True).first()
            )
            start = max(covered, china_midnight(today)) if covered else china_midnight(today)
            if start >= horizon_end:
                continue
            listing_create(asset=asset, device_type=device_types[model], compute_class=classes[class_code],
                           device_count=devices, window_start=start, window_end=horizon_end, reserve_price=price, now=now)
            listed += 1
    if settings.DEMO_MODE:
        ComputeClass.objects.get_or_create(code=DEMO_CLASS_CODE,
                                           defaults={k: v for k, v in DEMO_CLASS.items() if k != "code"})
        listed += demo_listings_extend(now=now)
    return {"device_types": len(device_types), "assets": len(ASSETS), "listings_created": listed}


def demo_listings_extend(*, now: datetime | None = None) -> int:
    """In demo mode, keep the demo class listed for the next hours (a provider's job, which
    the market simulator plays); return how many listings were made. A listing refused
    (say, someone listed the devices by hand) is logged and skipped."""
    compute_class = ComputeClass.objects.filter(code=DEMO_CLASS_CODE).first()
    if compute_class is None or not is_demo_class(compute_class):
        return 0
    now = now or timezone.now()
    period, span = class_period(compute_class), timedelta(hours=DEMO_LISTING_HOURS)
    made = 0
    for provider_name, asset_name, model, devices, price in DEMO_LISTINGS:
        asset = ComputeAsset.objects.filter(provider__name=provider_name, name=asset_name).first()
        device_type = DeviceType.objects.filter(model=model).first()
        if asset is None or device_type is None:
            continue
        covered = (
            Listing.objects.filter(asset=asset, device_type=device_type, compute_class=compute_class,
                                   status=Listing.Status.ACTIVE)
            .order_by("-window_end").values_list("window_end", flat=True).first()
        )
        if covered is not None and covered >= now + span / 2:
            continue
        start = period_containing(now, period)
        if covered is not None:
            start = max(start, covered)
        try:
            listing_create(asset=asset, device_type=device_type, compute_class=compute_class, device_count=devices,
                           window_start=start, window_end=period_containing(now + span, period), reserve_price=price,
                           now=now)
            made += 1
        except AppError as exc:
            log.warning("demo listing of %s in %s refused: %s %s", model, asset_name, exc.code, exc.detail)
    return made
