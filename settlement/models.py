"""After the trade: delivery, metering, disputes, and the settlement of each allocation.

Money is integer fen, capacity integer SCU·h, device-hours exact decimals. An allocation
settles exactly once (``Settlement``'s primary key is the allocation, and the runner marks
``Allocation.settled_at`` in the same transaction as the journals).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Delivery(models.Model):
    """How the provider hands an allocation to its holder: one row once delivery starts (or
    once the holder reports access missing before it did)."""

    class State(models.TextChoices):
        STARTED = "started", _("Delivery started")
        CONFIRMED = "confirmed", _("Access confirmed")
        MISSING = "missing", _("Access reported missing")

    allocation = models.OneToOneField("exchange.Allocation", on_delete=models.PROTECT, primary_key=True,
                                      related_name="delivery")
    state = models.CharField(max_length=12, choices=State.choices, default=State.STARTED)
    endpoint = models.CharField(max_length=300, blank=True)
    # Fernet token (settlement.secrets); readable only through ``delivery_credentials``.
    credentials_encrypted = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    holder_note = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        # The audit trail reads deliveries by when they started and were answered, newest first.
        indexes = [models.Index(fields=["started_at", "allocation"], name="delivery_started_idx"),
                   models.Index(fields=["answered_at", "allocation"], name="delivery_answered_idx")]

    def __repr__(self) -> str:  # never the credentials, in a log or a traceback
        return f"<Delivery allocation={self.allocation_id} state={self.state}>"

    __str__ = __repr__


class MeterReport(models.Model):
    """Device-hours the provider reports delivered for an allocation; reports add up."""

    class Source(models.TextChoices):
        API = "api", _("API")
        PAGE = "page", _("Page")
        CSV = "csv", _("CSV upload")

    allocation = models.ForeignKey("exchange.Allocation", on_delete=models.PROTECT, related_name="meter_reports")
    device_hours = models.DecimalField(max_digits=18, decimal_places=4)
    source = models.CharField(max_length=4, choices=Source.choices, default=Source.API)
    note = models.CharField(max_length=200, blank=True)
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["allocation_id", "id"]
        constraints = [models.CheckConstraint(condition=Q(device_hours__gt=0), name="meter_report_positive")]
        indexes = [models.Index(fields=["created_at", "id"], name="meter_report_time_idx")]  # the audit trail


class Dispute(models.Model):
    """A holder's objection to what was metered; a regulator decides it."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        UPHELD = "upheld", _("Metering upheld")
        ADJUSTED = "adjusted", _("Delivered amount adjusted")

    allocation = models.ForeignKey("exchange.Allocation", on_delete=models.PROTECT, related_name="disputes")
    report = models.ForeignKey(MeterReport, on_delete=models.PROTECT, null=True, blank=True, related_name="disputes")
    reason = models.CharField(max_length=1000)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    # Set by an adjustment: what counts as delivered, replacing the reports' sum.
    delivered_device_hours = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    resolution_note = models.CharField(max_length=1000, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["opened_at", "id"], name="dispute_opened_idx"),  # the audit trail
                   models.Index(fields=["resolved_at", "id"], name="dispute_resolved_idx")]
        constraints = [
            models.UniqueConstraint(fields=["allocation"], condition=Q(state="open"), name="dispute_one_open"),
            models.CheckConstraint(condition=Q(delivered_device_hours__isnull=True) | Q(delivered_device_hours__gte=0),
                                   name="dispute_adjustment_nonnegative"),
        ]


class SlaCreditStep(models.Model):
    """One step of the published SLA credit schedule: delivered below ``below_bp`` (of
    10,000) earns ``credit_bp`` of the allocation's value. The highest step that applies wins."""

    below_bp = models.PositiveIntegerField(unique=True)
    credit_bp = models.PositiveIntegerField()

    class Meta:
        ordering = ["-below_bp"]
        verbose_name = "SLA credit step"
        constraints = [
            models.CheckConstraint(condition=Q(below_bp__gte=1, below_bp__lte=10000, credit_bp__lte=10000),
                                   name="sla_step_range"),
        ]

    def __str__(self) -> str:
        return f"below {self.below_bp / 100:.2f} % → {self.credit_bp / 100:.2f} %"


class Settlement(models.Model):
    """What settling one allocation did, in fen and SCU·h (the journals carry the money)."""

    allocation = models.OneToOneField("exchange.Allocation", on_delete=models.PROTECT, primary_key=True,
                                      related_name="settlement", db_constraint=False)
    trade = models.ForeignKey("exchange.Trade", on_delete=models.PROTECT, related_name="+", db_constraint=False,
                              db_index=False)
    # No index of their own: (holder, settled_at) and (seller, settled_at) below serve every lookup.
    holder = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+",
                               db_constraint=False, db_index=False)
    seller = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+",
                               db_constraint=False, db_index=False)
    price_fen = models.BigIntegerField()
    scu_h = models.BigIntegerField()
    # Delivered counts what the allocation's resales delivered too (measured where delivered).
    delivered_scu_h = models.BigIntegerField()
    refunded_scu_h = models.BigIntegerField()
    paid_fen = models.BigIntegerField()
    refund_fen = models.BigIntegerField()
    fee_fen = models.BigIntegerField()
    sla_credit_bp = models.PositiveIntegerField(default=0)
    sla_credit_fen = models.BigIntegerField(default=0)
    # Of the credit: what the seller could not pay, recorded as its debt to the holder.
    credit_debt_fen = models.BigIntegerField(default=0)
    # Fees the proceeds did not cover and the seller's funds could not either: debt to the exchange.
    fee_debt_fen = models.BigIntegerField(default=0)
    debt_repaid_fen = models.BigIntegerField(default=0)
    payout_fen = models.BigIntegerField(default=0)
    settled_at = models.DateTimeField()

    class Meta:
        ordering = ["-settled_at", "-allocation_id"]
        indexes = [models.Index(fields=["seller", "settled_at"]), models.Index(fields=["holder", "settled_at"]),
                   models.Index(fields=["settled_at", "allocation"], name="settlement_time_idx")]  # the audit trail
        constraints = [
            models.CheckConstraint(condition=Q(delivered_scu_h__gte=0, refunded_scu_h__gte=0),
                                   name="settlement_nonnegative"),
            models.CheckConstraint(condition=Q(scu_h=models.F("delivered_scu_h") + models.F("refunded_scu_h")),
                                   name="settlement_delivered_plus_refunded"),
        ]


class Payout(models.Model):
    """One owner's part of a settlement's proceeds (largest remainder: parts sum exactly)."""

    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, related_name="payouts", db_constraint=False)
    # No index of its own: (organisation, settlement) below serves every lookup.
    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+",
                                     db_constraint=False, db_index=False)
    share_bp = models.PositiveIntegerField()
    amount_fen = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["organisation", "settlement"])]


class Debt(models.Model):
    """What a seller owes and could not pay at settlement, taken from its next proceeds.

    ``creditor`` is the holder owed an SLA credit, or empty for fees owed to the exchange.
    """

    debtor = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="debts")
    creditor = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="credits_due")
    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, related_name="debts", db_constraint=False)
    amount_fen = models.BigIntegerField()
    repaid_fen = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["debtor"], condition=Q(repaid_fen__lt=models.F("amount_fen")),
                                name="debt_outstanding_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0, repaid_fen__gte=0,
                                               repaid_fen__lte=models.F("amount_fen")), name="debt_range"),
        ]
