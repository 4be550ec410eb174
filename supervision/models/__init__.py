"""Supervision's records, one module per area."""

from supervision.models.actions import SupervisionAction

__all__ = ["SupervisionAction"]
