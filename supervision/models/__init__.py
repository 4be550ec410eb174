"""Supervision's records, one module per area."""

from supervision.models.actions import SupervisionAction
from supervision.models.surveillance import Alert, Rule, SurveillanceCursor

__all__ = ["Alert", "Rule", "SupervisionAction", "SurveillanceCursor"]
