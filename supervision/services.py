"""Writes shared by the console's areas."""

from __future__ import annotations

from accounts.access import Actor
from supervision.models import SupervisionAction


def action_record(*, actor: Actor, action: str, reason: str, organisation=None, instrument=None,
                  details: dict | None = None) -> SupervisionAction:
    """Record who did what and why (call inside the action's transaction)."""
    return SupervisionAction.objects.create(
        action=action, actor=actor.user, regulator=actor.organisation, organisation=organisation,
        instrument=instrument, reason=reason, details=details or {})
