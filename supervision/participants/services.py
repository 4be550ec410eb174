"""The regulator's decisions about participants: KYC, beneficial-owner groups, fee tiers.

Each decision locks the organisation's row, checks the change against what the row says
now, writes it together with its SupervisionAction (who, when, why) in one transaction, and
once that commits tells the organisation on its private stream and every open console.

Access follows the change at once: every order path reads the organisation's status and
owner on each order (accounts.access.check_actor, and order entry's statement), and the
engine reads fee tiers for each batch.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.access import Actor, check_supervisor
from accounts.models import BeneficialOwner, Organisation
from exchange.errors import AppError, NotFound
from exchange.events import private_events_send
from exchange.models import FeeTier, InboxCommand, Instrument, LedgerAccount, MemberTier, Order
from supervision.events import console_publish
from supervision.models import SupervisionAction
from supervision.services import action_record

Kyc = Organisation.Kyc
# The regulator supervises the market's participants; the operator and the regulator
# themselves are not in the queue (a regulator could otherwise suspend its own office).
PARTICIPANT_KINDS = (Organisation.Kind.BUYER, Organisation.Kind.PROVIDER, Organisation.Kind.ATTESTOR)
# action → (statuses it applies to, the status it sets). A rejected application can be
# approved later (the applicant sent what was missing); any status can be suspended.
KYC_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({Kyc.PENDING, Kyc.REJECTED}), Kyc.VERIFIED),
    "reject": (frozenset({Kyc.PENDING}), Kyc.REJECTED),
    "suspend": (frozenset({Kyc.PENDING, Kyc.VERIFIED, Kyc.REJECTED}), Kyc.SUSPENDED),
    "reinstate": (frozenset({Kyc.SUSPENDED}), Kyc.VERIFIED),
}
REASON_MAX = 1000
OWNER_NAME_MAX = 200


def reason_clean(reason, *, required: bool, field: str = "reason") -> str:
    reason = reason.strip() if isinstance(reason, str) else ""
    if required and not reason:
        raise AppError("invalid", _("Give the reason for this decision; it is recorded and sent to the organisation."),
                       fields={field: _("Required.")})
    if len(reason) > REASON_MAX:
        raise AppError("invalid", _("The reason is at most 1,000 characters."), fields={field: _("Too long.")})
    return reason


def id_or_none(value) -> int | None:
    """A positive bigint id, or None for anything else (a page's form sends text)."""
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and 0 < number < 2**63 else None


def participant_locked(organisation_id) -> Organisation:
    """The participant's row, locked until commit: decisions about one organisation queue up."""
    pk = id_or_none(organisation_id)
    organisation = (Organisation.objects.select_for_update(of=("self",)).select_related("beneficial_owner")
                    .filter(pk=pk).first() if pk else None)
    if organisation is None:
        raise NotFound(_("No organisation %(id)s.") % {"id": organisation_id}, code="organisation_not_found")
    if organisation.kind not in PARTICIPANT_KINDS:
        raise AppError("not_a_participant", _("%(name)s is the %(kind)s, not a market participant the console "
                                              "supervises.") % {"name": organisation.name,
                                                                "kind": organisation.get_kind_display()},
                       status_code=422)
    return organisation


def _announce(record: SupervisionAction, organisation: Organisation | None, *, private: dict | None,
              console: dict) -> None:
    """The organisation's private stream and the consoles, once the decision commits."""
    if organisation is not None and private is not None:
        private_events_send([(organisation.pk, private)])
    console_publish({
        **console, "action_id": record.pk, "action": record.action, "reason": record.reason,
        "organisation_id": organisation.pk if organisation else None,
        "organisation": organisation.name if organisation else None,
        "by": record.actor.email, "at": record.created_at.isoformat(),
    })


# --- KYC -------------------------------------------------------------------------------------

def _orders_cancel_all(organisation: Organisation) -> int:
    """Ask the engine to cancel the organisation's live orders, as its own cancels would (its
    members cannot cancel once it is suspended). Orders past gate closure are left to the
    engine's close; one with a cancel already waiting gets no second. The number asked."""
    orders = list(Order.objects.filter(organisation=organisation, status__in=Order.LIVE,
                                       instrument__gate_closure_at__gt=timezone.now())
                  .exclude(instrument__state=Instrument.State.CLOSED)
                  .exclude(pk__in=InboxCommand.objects.filter(action=InboxCommand.Action.CANCEL,
                                                              processed_at__isnull=True).values("order_id"))
                  .order_by("id").values_list("id", "instrument_id"))
    InboxCommand.objects.bulk_create(InboxCommand(instrument_id=instrument_id, action=InboxCommand.Action.CANCEL,
                                                  order_id=order_id) for order_id, instrument_id in orders)
    if orders:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify('cx_inbox', '')")
    return len(orders)


@transaction.atomic
def kyc_decide(*, actor: Actor, organisation_id, action: str, reason: str = "",
               cancel_orders: bool = True) -> Organisation:
    """Approve, reject, suspend or reinstate; a reason is required for all but approval. A
    suspension also cancels the organisation's live orders unless ``cancel_orders`` is false
    (a resting order would otherwise still trade for an organisation that may not act)."""
    check_supervisor(actor)
    if action not in KYC_ACTIONS:
        raise AppError("invalid", _("The action is approve, reject, suspend or reinstate."),
                       fields={"action": _("Unknown action.")})
    reason = reason_clean(reason, required=action != "approve")
    organisation = participant_locked(organisation_id)
    applies_to, status = KYC_ACTIONS[action]
    previous = organisation.kyc_status
    if previous not in applies_to:
        raise AppError("kyc_transition", _("%(name)s is %(status)s: “%(action)s” applies only to %(allowed)s "
                                           "organisations.") % {
            "name": organisation.name, "status": Kyc(previous).label, "action": action,
            "allowed": ", ".join(str(Kyc(s).label) for s in sorted(applies_to))}, status_code=409)
    organisation.kyc_status = status
    organisation.save(update_fields=["kyc_status"])
    details = {"from": previous, "to": status}
    if action == "suspend":
        details["cancelled_orders"] = _orders_cancel_all(organisation) if cancel_orders else 0
    record = action_record(actor=actor, action=f"kyc.{action}", reason=reason, organisation=organisation,
                           details=details)
    _announce(record, organisation, private={"type": "kyc.changed", "status": status, "reason": reason},
              console={"type": "kyc.changed", "status": status, "previous": previous})
    return organisation


# --- beneficial-owner groups -----------------------------------------------------------------

@transaction.atomic
def owner_create(*, actor: Actor, name: str, reason: str = "") -> BeneficialOwner:
    """A new beneficial-owner group, empty until organisations are moved into it."""
    check_supervisor(actor)
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > OWNER_NAME_MAX:
        raise AppError("invalid", _("Name the group's ultimate owner (at most 200 characters)."),
                       fields={"name": _("Required, at most 200 characters.")})
    reason = reason_clean(reason, required=False)
    if BeneficialOwner.objects.filter(name__iexact=name).exists():
        raise AppError("owner_exists", _("A beneficial-owner group named %(name)s exists; move organisations into "
                                         "it instead.") % {"name": name}, fields={"name": _("Already exists.")},
                       status_code=409)
    owner = BeneficialOwner.objects.create(name=name)
    record = action_record(actor=actor, action="owner.create", reason=reason,
                           details={"owner_id": owner.pk, "name": name})
    _announce(record, None, private=None, console={"type": "owner.created", "owner_id": owner.pk, "owner": name})
    return owner


@transaction.atomic
def owner_assign(*, actor: Actor, organisation_id, owner_id, reason: str) -> Organisation:
    """Move an organisation into another beneficial-owner group (self-trade prevention and
    wash-trade surveillance compare groups)."""
    check_supervisor(actor)
    reason = reason_clean(reason, required=True)
    pk = id_or_none(owner_id)
    owner = BeneficialOwner.objects.filter(pk=pk).first() if pk else None
    if owner is None:
        raise AppError("invalid", _("No beneficial-owner group %(id)s.") % {"id": owner_id},
                       fields={"owner_id": _("Not a group.")})
    organisation = participant_locked(organisation_id)
    previous = organisation.beneficial_owner
    if previous.pk == owner.pk:
        raise AppError("no_change", _("%(name)s is already in the group %(owner)s.") % {
            "name": organisation.name, "owner": owner.name}, status_code=409)
    organisation.beneficial_owner = owner
    organisation.save(update_fields=["beneficial_owner"])
    record = action_record(actor=actor, action="owner.assign", reason=reason, organisation=organisation, details={
        "from_owner_id": previous.pk, "from": previous.name, "to_owner_id": owner.pk, "to": owner.name})
    _announce(record, organisation,
              private={"type": "beneficial_owner.changed", "owner_id": owner.pk, "owner": owner.name, "reason": reason},
              console={"type": "owner.assigned", "owner_id": owner.pk, "owner": owner.name,
                       "previous_owner_id": previous.pk, "previous_owner": previous.name})
    return organisation


# --- fee tiers -------------------------------------------------------------------------------

def _check_no_bids_underheld(organisation: Organisation, taker_before: int, taker_after: int) -> None:
    """A live bid holds its price plus the taker fee in force when it was placed; a trade under
    a higher fee would take the difference from money that was never held. So a change that
    raises the taker fee waits until the organisation has no live bids.

    The organisation's available-funds row is locked first: order entry locks it to hold
    funds, so a placement still in flight commits (and its bid is seen here) before this
    check reads. (A placement that read the fee before this change commits and locks after
    it is not caught; the window is one order's entry.)
    """
    if taker_after <= taker_before:
        return
    list(LedgerAccount.objects.select_for_update().filter(organisation=organisation, kind=LedgerAccount.Kind.AVAILABLE))
    bids = Order.objects.filter(organisation=organisation, side="buy", status__in=Order.LIVE, held_fen__gt=0).count()
    if bids:
        raise AppError("bids_open", _("%(name)s has %(n)s live bids holding the lower taker fee; a tier with a higher "
                                      "taker fee applies once they are filled or cancelled.") % {
            "name": organisation.name, "n": bids}, status_code=409)


@transaction.atomic
def tier_assign(*, actor: Actor, organisation_id, tier_code: str | None, reason: str) -> Organisation:
    """Put an organisation on a fee tier, or (``tier_code`` empty) back on the default."""
    check_supervisor(actor)
    reason = reason_clean(reason, required=True)
    tier = None
    if tier_code not in (None, ""):
        tier = FeeTier.objects.filter(code=tier_code).first() if isinstance(tier_code, str) else None
        if tier is None:
            raise AppError("invalid", _("No fee tier %(code)s.") % {"code": str(tier_code)[:50]},
                           fields={"tier": _("Not a tier.")})
    organisation = participant_locked(organisation_id)
    current = MemberTier.objects.select_related("tier").filter(organisation=organisation).first()
    if (current.tier_id if current else None) == (tier.pk if tier else None):
        raise AppError("no_change", _("%(name)s is already on that tier.") % {"name": organisation.name},
                       status_code=409)
    default = FeeTier.objects.filter(is_default=True).first()
    before, after = (current.tier if current else default), (tier or default)
    _check_no_bids_underheld(organisation, before.taker_bps if before else 0, after.taker_bps if after else 0)
    if tier is None:
        current.delete()
    else:
        MemberTier.objects.update_or_create(organisation=organisation, defaults={"tier": tier})
    record = action_record(actor=actor, action="tier.assign" if tier else "tier.remove", reason=reason,
                           organisation=organisation,
                           details={"from": current.tier.code if current else None, "to": tier.code if tier else None})
    fees = {"tier": tier.code if tier else None, "maker_bps": after.maker_bps if after else 0,
            "taker_bps": after.taker_bps if after else 0}
    _announce(record, organisation, private={"type": "fee_tier.changed", **fees, "reason": reason},
              console={"type": "fee_tier.changed", **fees, "previous": current.tier.code if current else None})
    return organisation
