"""Market surveillance: its rules, the alerts they raise, and how far it has read.

The rules themselves are code (supervision/surveillance/rules.py); a ``Rule`` row holds
what the regulator may change: whether it runs and its parameters.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _


class Rule(models.Model):
    code = models.SlugField(max_length=40, unique=True)
    enabled = models.BooleanField(default=True)
    # Values the regulator set; a parameter not here takes the rule's default.
    parameters = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Alert(models.Model):
    class Severity(models.TextChoices):
        INFO = "info", _("Information")
        LOW = "low", _("Low")
        MEDIUM = "medium", _("Medium")
        HIGH = "high", _("High")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        UNDER_REVIEW = "under_review", _("Under review")
        CLOSED = "closed", _("Closed")

    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="alerts")
    # What the alert is about (e.g. owner and instrument): further events with the same key
    # join an open alert instead of raising another one.
    key = models.CharField(max_length=200)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    note = models.TextField(blank=True)
    # Order ids, trade ids, and the figures that crossed the rule's thresholds.
    evidence = models.JSONField(default=dict)
    organisation_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    instrument = models.ForeignKey("exchange.Instrument", on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    # The inbox command whose processing raised it (None for market-wide rules).
    seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "-id"], name="alert_state_idx"),
            models.Index(fields=["rule", "key", "-id"], name="alert_rule_key_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}:{self.key} ({self.state})"


class SurveillanceCursor(models.Model):
    """How far surveillance has read the inbox, written in the transaction of the alerts of
    what it read (so nothing is processed twice, or skipped, across restarts).

    Everything with ``seq`` at or below ``seq`` has been processed, except the commands in
    ``waiting`` (in the inbox, not yet processed by the engine when passed) and ``gaps``
    (ranges of sequence numbers with no row visible yet: an entry still committing, or one
    rolled back), each ``[first, last, transactions running then, first seen (epoch s)]``; see
    supervision.surveillance.feed.
    """

    name = models.CharField(max_length=20, primary_key=True)
    seq = models.BigIntegerField(default=0)
    waiting = ArrayField(models.BigIntegerField(), default=list, blank=True)
    gaps = models.JSONField(default=list, blank=True)
    commands = models.BigIntegerField(default=0)
    trades = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
