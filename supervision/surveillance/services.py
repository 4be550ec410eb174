"""The regulator's side of surveillance: the alert workflow (open → under review → closed
with a note) and the rules' settings. Every action records who, when and why
(``supervision.services.action_record``) and reaches open consoles after it commits."""

from __future__ import annotations

from django.db import transaction

from accounts.access import Actor, check_supervisor
from exchange.errors import AppError, NotFound
from supervision.events import console_publish
from supervision.models import Alert, Rule
from supervision.services import action_record
from supervision.surveillance.params import SPECS, effective, parameters_check, rules_ensure

NOTE_MAX = 2000


def _note(note, *, required: bool) -> str:
    if note is not None and not isinstance(note, str):
        raise AppError("invalid", "The note is text.", fields={"note": "Text."})
    note = (note or "").strip()
    if required and not note:
        raise AppError("invalid", "Closing an alert needs a note: what was found and done.",
                       fields={"note": "Required."})
    if len(note) > NOTE_MAX:
        raise AppError("invalid", f"The note is at most {NOTE_MAX} characters.", fields={"note": f"At most {NOTE_MAX}."})
    return note


def _locked(alert_id: int) -> Alert:
    if not isinstance(alert_id, int) or not 0 < alert_id < 2**63:
        raise NotFound("No such alert.")
    alert = Alert.objects.select_for_update(of=("self",)).select_related("rule", "instrument").filter(pk=alert_id).first()
    if alert is None:
        raise NotFound("No such alert.")
    return alert


def _record(actor: Actor, alert: Alert, action: str, reason: str) -> None:
    orgs = alert.organisation_ids
    action_record(actor=actor, action=action, reason=reason, instrument=alert.instrument,
                  organisation=alert_organisation(alert) if len(orgs) == 1 else None,
                  details={"alert": alert.id, "rule": alert.rule.code, "organisation_ids": orgs, "state": alert.state})
    console_publish({"type": "alert.state", "id": alert.id, "rule": alert.rule.code, "state": alert.state,
                     "by": actor.user.email})


def alert_organisation(alert: Alert):
    from accounts.models import Organisation

    return Organisation.objects.filter(pk=alert.organisation_ids[0]).first()


def alert_review(*, actor: Actor, alert_id: int, note: str | None = None) -> Alert:
    """Take an open alert under review (the runner stops adding evidence to it)."""
    check_supervisor(actor)
    note = _note(note, required=False)
    with transaction.atomic():
        alert = _locked(alert_id)
        if alert.state != Alert.State.OPEN:
            raise AppError("wrong_state", f"The alert is {alert.get_state_display().lower()}; only an open alert is "
                           "taken under review.", status_code=409)
        alert.state = Alert.State.UNDER_REVIEW
        if note:
            alert.note = note
        alert.save(update_fields=["state", "note", "updated_at"])
        _record(actor, alert, "alert_review", note or "Taken under review.")
    return alert


def alert_close(*, actor: Actor, alert_id: int, note: str) -> Alert:
    """Close an open or reviewed alert with a note saying what was found and done."""
    check_supervisor(actor)
    note = _note(note, required=True)
    with transaction.atomic():
        alert = _locked(alert_id)
        if alert.state == Alert.State.CLOSED:
            raise AppError("wrong_state", "The alert is already closed.", status_code=409)
        alert.state, alert.note = Alert.State.CLOSED, note
        alert.save(update_fields=["state", "note", "updated_at"])
        _record(actor, alert, "alert_close", note)
    return alert


def rule_update(*, actor: Actor, code: str, reason: str, enabled: bool | None = None,
                parameters: dict | None = None) -> Rule:
    """Switch a rule on or off and set some of its parameters (the runner reads them each pass)."""
    check_supervisor(actor)
    spec = SPECS.get(code) if isinstance(code, str) else None
    if spec is None:
        raise NotFound("No such surveillance rule.")
    fields = {}
    if not isinstance(reason, str) or not reason.strip():
        fields["reason"] = "Say why the rule changes."
    elif len(reason) > 1000:
        fields["reason"] = "At most 1000 characters."
    if enabled is not None and not isinstance(enabled, bool):
        fields["enabled"] = "true or false."
    if fields:
        raise AppError("invalid", "The change is not valid.", fields=fields)
    values = parameters_check(spec, parameters or {})
    if enabled is None and not values:
        raise AppError("invalid", "Send enabled, parameters, or both.", fields={"parameters": "Nothing to change."})
    rules_ensure()
    with transaction.atomic():
        rule = Rule.objects.select_for_update().get(code=code)
        before = {"enabled": rule.enabled, "parameters": effective(spec, rule.parameters)}
        if enabled is not None:
            rule.enabled = enabled
        rule.parameters = {**rule.parameters, **values}
        rule.save(update_fields=["enabled", "parameters", "updated_at"])
        after = {"enabled": rule.enabled, "parameters": effective(spec, rule.parameters)}
        action_record(actor=actor, action="rule_update", reason=reason.strip(),
                      details={"rule": code, "before": before, "after": after})
        console_publish({"type": "rule", "code": code, **after, "by": actor.user.email})
    return rule
