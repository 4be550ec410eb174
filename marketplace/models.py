"""The catalogue (hubs, compute classes), attested hardware, assets, listings and provenance.

Quantities are integer SCU·h; factors are exact decimals (PFLOP/s per device); money is
CNY with two places. Times are aware UTC in the store.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

ZERO_HASH = "0" * 64


class Bilingual:
    """``name``/``description`` in the active language, from ``*_en`` and ``*_zh`` fields."""

    def _local(self, field: str) -> str:
        zh = (get_language() or "").lower().startswith("zh")
        value = getattr(self, f"{field}_zh") if zh else ""
        return value or getattr(self, f"{field}_en")

    @property
    def name(self) -> str:
        return self._local("name")


class Hub(Bilingual, models.Model):
    """A national hub node (e.g. Ningxia, ``NX``). ``region_cities`` set the 5 ms circle."""

    code = models.CharField(max_length=8, unique=True)
    name_en = models.CharField(max_length=100)
    name_zh = models.CharField(max_length=100)
    region_cities = ArrayField(models.CharField(max_length=60), default=list, blank=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "code"]

    def __str__(self) -> str:
        return self.code


class Cluster(Bilingual, models.Model):
    """A data-centre cluster of a hub. ``cities`` are where it is: the 1 ms circle."""

    hub = models.ForeignKey(Hub, on_delete=models.PROTECT, related_name="clusters")
    code = models.CharField(max_length=16, unique=True)
    name_en = models.CharField(max_length=120)
    name_zh = models.CharField(max_length=120)
    cities = ArrayField(models.CharField(max_length=60), default=list, blank=True)

    class Meta:
        ordering = ["hub__sort_order", "code"]

    def __str__(self) -> str:
        return self.code


class Precision(models.TextChoices):
    FP32 = "fp32", _("FP32")
    FP16 = "fp16", _("FP16/BF16 dense")
    FP64 = "fp64", _("FP64")


class ComputeClass(Bilingual, models.Model):
    """A catalogue row kept by the regulator: what one SCU means for this kind of work."""

    class Category(models.TextChoices):
        GENERAL = "general", _("General")
        AI = "ai", _("AI")
        HPC = "hpc", _("HPC")

    code = models.CharField(max_length=12, unique=True)
    name_en = models.CharField(max_length=100)
    name_zh = models.CharField(max_length=100)
    category = models.CharField(max_length=8, choices=Category.choices)
    reference_precision = models.CharField(max_length=4, choices=Precision.choices)
    min_memory_gb = models.PositiveIntegerField()
    min_interconnect_gbps = models.PositiveIntegerField()
    # The delivery period the exchange trades: a divisor of 24, counted from 00:00 China time.
    period_hours = models.PositiveSmallIntegerField(default=24)
    description_en = models.TextField(blank=True)
    description_zh = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "compute classes"
        constraints = [
            models.CheckConstraint(condition=Q(period_hours__in=[1, 2, 3, 4, 6, 8, 12, 24]), name="class_period_divides_day")
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def description(self) -> str:
        return self._local("description")


class DeviceType(models.Model):
    """A hardware model. Vendor peaks are shown for reference only; factors come from attestations."""

    vendor = models.CharField(max_length=100)
    model = models.CharField(max_length=100)
    memory_gb = models.PositiveIntegerField()
    interconnect_gbps = models.PositiveIntegerField()
    peak_fp32_pflops = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    peak_fp16_pflops = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    peak_fp64_pflops = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    registered_by = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vendor", "model"]
        constraints = [models.UniqueConstraint(fields=["vendor", "model"], name="device_type_unique")]

    def __str__(self) -> str:
        return f"{self.vendor} {self.model}"

    def hardware_facts(self) -> dict:
        """What an attestation signs about the hardware; changing any of it voids the attestation."""
        return {
            "id": self.id,
            "vendor": self.vendor,
            "model": self.model,
            "memory_gb": self.memory_gb,
            "interconnect_gbps": self.interconnect_gbps,
        }


class AttestorKey(models.Model):
    """An attestor's Ed25519 public key. The private key never reaches the exchange."""

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="attestor_keys")
    key_id = models.CharField(max_length=16, unique=True, help_text="First 16 hex digits of SHA-256(public key).")
    public_key = models.CharField(max_length=64, help_text="Raw 32-byte Ed25519 public key, base64.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organisation_id", "created_at"]

    def __str__(self) -> str:
        return self.key_id


class Attestation(models.Model):
    """A signed benchmark result for a device type.

    ``payload`` is exactly what was signed (canonical JSON of it, see ``marketplace.signing``);
    the columns beside it are copies for querying.
    """

    device_type = models.ForeignKey(DeviceType, on_delete=models.PROTECT, related_name="attestations")
    attestor = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="attestations")
    key = models.ForeignKey(AttestorKey, on_delete=models.PROTECT, related_name="attestations")
    method = models.CharField(max_length=300)
    measured_on = models.DateField()
    sustained_fp32_pflops = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    sustained_fp16_pflops = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    sustained_fp64_pflops = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    payload = models.JSONField()
    signature = models.CharField(max_length=128, help_text="Ed25519 signature of the canonical payload, base64.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-measured_on", "-id"]
        constraints = [models.UniqueConstraint(fields=["key", "signature"], name="attestation_signature_unique")]

    def __str__(self) -> str:
        return f"{self.device_type} by {self.attestor_id} on {self.measured_on}"

    def sustained(self, precision: str):
        return getattr(self, f"sustained_{precision}_pflops")


class ComputeAsset(models.Model):
    """A cluster or hall. ``provider`` operates and lists it; owners share its proceeds."""

    provider = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="assets")
    name = models.CharField(max_length=200)
    hub = models.ForeignKey(Hub, on_delete=models.PROTECT, related_name="assets")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="assets")
    address = models.CharField(max_length=300, blank=True)
    description = models.TextField(blank=True)
    pue = models.DecimalField(max_digits=4, decimal_places=2)
    green_share = models.DecimalField(max_digits=5, decimal_places=2, help_text="Green-power share, per cent.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="asset_name_unique_per_provider"),
            models.CheckConstraint(condition=Q(pue__gte=1, pue__lte=3), name="asset_pue_range"),
            models.CheckConstraint(condition=Q(green_share__gte=0, green_share__lte=100), name="asset_green_share_range"),
        ]

    def __str__(self) -> str:
        return self.name


class AssetOwnership(models.Model):
    """One owner's share in one share set. A set (same asset and ``effective_from``) sums to 10 000 bp.

    A change of owners adds a new set effective from a later time; earlier sets stay as they were.
    """

    asset = models.ForeignKey(ComputeAsset, on_delete=models.PROTECT, related_name="ownerships")
    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="asset_shares")
    share_bp = models.PositiveIntegerField()
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["asset_id", "-effective_from", "-share_bp", "organisation_id"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "effective_from", "organisation"], name="ownership_unique"),
            models.CheckConstraint(condition=Q(share_bp__gte=1, share_bp__lte=10000), name="ownership_share_range"),
        ]
        indexes = [models.Index(fields=["asset", "effective_from"])]


class InventoryItem(models.Model):
    """How many devices of a type an asset holds."""

    asset = models.ForeignKey(ComputeAsset, on_delete=models.PROTECT, related_name="inventory")
    device_type = models.ForeignKey(DeviceType, on_delete=models.PROTECT, related_name="inventory")
    count = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset_id", "device_type_id"]
        constraints = [models.UniqueConstraint(fields=["asset", "device_type"], name="inventory_unique")]


class Listing(models.Model):
    """N devices of one type, offered in one compute class over whole delivery periods.

    ``factor`` and ``attestation`` are fixed when the listing is made: a later attestation
    does not change capacity already listed (and perhaps sold).
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    asset = models.ForeignKey(ComputeAsset, on_delete=models.PROTECT, related_name="listings")
    device_type = models.ForeignKey(DeviceType, on_delete=models.PROTECT, related_name="listings")
    compute_class = models.ForeignKey(ComputeClass, on_delete=models.PROTECT, related_name="listings")
    attestation = models.ForeignKey(Attestation, on_delete=models.PROTECT, related_name="listings")
    factor = models.DecimalField(max_digits=10, decimal_places=4)
    device_count = models.PositiveIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    reserve_price = models.DecimalField(max_digits=12, decimal_places=2, help_text="CNY per SCU·h.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(window_end__gt=models.F("window_start")), name="listing_window_positive"),
            models.CheckConstraint(condition=Q(device_count__gte=1), name="listing_devices_positive"),
            models.CheckConstraint(condition=Q(reserve_price__gt=0), name="listing_price_positive"),
        ]
        indexes = [
            models.Index(fields=["asset", "device_type", "window_start"], name="listing_asset_window"),
            models.Index(fields=["status", "window_end"], name="listing_status_window"),
        ]

    def __str__(self) -> str:
        return f"Listing {self.id}"


class ListingPeriod(models.Model):
    """A listing's capacity in one delivery period: what backs asks in one instrument.

    A withdrawn listing keeps its rows with ``scu_h`` cut to ``sold_scu_h``, so a plain sum
    of ``scu_h`` is always the capacity listed.
    """

    listing = models.ForeignKey(Listing, on_delete=models.PROTECT, related_name="periods")
    period_start = models.DateTimeField()
    scu_h = models.BigIntegerField()
    sold_scu_h = models.BigIntegerField(default=0)
    compute_class = models.ForeignKey(ComputeClass, on_delete=models.PROTECT, related_name="+")
    hub = models.ForeignKey(Hub, on_delete=models.PROTECT, related_name="+")
    provider = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["listing_id", "period_start"]
        constraints = [
            models.UniqueConstraint(fields=["listing", "period_start"], name="listing_period_unique"),
            models.CheckConstraint(condition=Q(sold_scu_h__gte=0, sold_scu_h__lte=models.F("scu_h")), name="listing_period_not_oversold"),
        ]
        indexes = [
            models.Index(fields=["provider", "compute_class", "hub", "period_start"], name="listing_period_capacity"),
        ]


class ProvenanceEvent(models.Model):
    """One link of the exchange's single, append-only, hash-chained provenance log.

    ``hash`` is SHA-256 of the canonical JSON of (seq, kind, asset, device type, payload,
    recorded_at, prev_hash). A database trigger refuses UPDATE and DELETE.
    """

    class Kind(models.TextChoices):
        ASSET_REGISTERED = "asset_registered", _("Asset registered")
        ASSET_CHANGED = "asset_changed", _("Asset details changed")
        OWNERS_CHANGED = "owners_changed", _("Owner shares changed")
        INVENTORY_CHANGED = "inventory_changed", _("Inventory changed")
        DEVICE_TYPE_CHANGED = "device_type_changed", _("Device type hardware changed")
        ATTESTATION_ADDED = "attestation_added", _("Attestation added")
        LISTING_CREATED = "listing_created", _("Listing created")
        LISTING_CHANGED = "listing_changed", _("Listing changed")
        LISTING_WITHDRAWN = "listing_withdrawn", _("Listing withdrawn")
        CAPACITY_SOLD = "capacity_sold", _("Capacity sold")
        CAPACITY_DELIVERED = "capacity_delivered", _("Capacity delivered")
        CAPACITY_SETTLED = "capacity_settled", _("Capacity settled")

    seq = models.BigIntegerField(unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    asset = models.ForeignKey(ComputeAsset, on_delete=models.PROTECT, null=True, blank=True, related_name="provenance")
    device_type = models.ForeignKey(DeviceType, on_delete=models.PROTECT, null=True, blank=True, related_name="provenance")
    payload = models.JSONField()
    recorded_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["asset", "seq"]), models.Index(fields=["device_type", "seq"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"
