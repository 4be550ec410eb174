"""Participants' pages: the KYC queue, one participant, owner groups, fee tiers, attestors.

Reading needs a regulator (supervision.views.console_actor); every form posts to a view
that also asks accounts.access.check_supervisor, then one service. A refused decision is
shown again on the participant's page with its 4xx status; nothing was written.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.access import check_supervisor
from accounts.models import Organisation
from exchange.errors import AppError
from exchange.models import FeeTier
from supervision.participants import selectors, services
from supervision.views import console_actor, refused

QUEUE_PAGE = 20
LIST_PAGE = 50
KYC_LABELS = {"approve": gettext_lazy("Approve"), "reject": gettext_lazy("Reject"), "suspend": gettext_lazy("Suspend"),
              "reinstate": gettext_lazy("Reinstate")}


def _reader(request):
    return console_actor(request)


def _decider(request):
    actor = console_actor(request)
    check_supervisor(actor)
    return actor


def _filters(request) -> dict:
    """The list's filters as typed; unknown values are ignored rather than refused (a page)."""
    status = request.GET.get("status", "")
    kind = request.GET.get("kind", "")
    return {"status": status if status in Organisation.Kyc.values else "",
            "kind": kind if kind in services.PARTICIPANT_KINDS else "",
            "q": request.GET.get("q", "").strip()[:100]}


@login_required
@require_GET
def participants(request):
    """The KYC queue (pending applications, oldest first, each with its members and the
    decisions at hand) above the list of every participant."""
    try:
        actor = _reader(request)
    except AppError as exc:
        return refused(request, exc)
    queue = Paginator(selectors.participants(status=Organisation.Kyc.PENDING), QUEUE_PAGE).get_page(
        request.GET.get("queue_page"))
    for org in queue:
        org.group_others = [o for o in org.beneficial_owner.organisations.all() if o.pk != org.pk]
    filters = _filters(request)
    everyone = Paginator(selectors.participants(status=filters["status"] or None, kind=filters["kind"] or None,
                                                search=filters["q"] or None), LIST_PAGE).get_page(request.GET.get("page"))
    return render(request, "supervision/participants.html", {
        "actor": actor, "queue": queue, "page": everyone, "filters": filters, "counts": selectors.kyc_counts(),
        "statuses": Organisation.Kyc.choices, "kinds": [(k, Organisation.Kind(k).label) for k in services.PARTICIPANT_KINDS],
        "may_decide": "supervise" in actor.scopes, "query": _query_without(request, "page"),
    })


def _query_without(request, name: str) -> str:
    query = request.GET.copy()
    query.pop(name, None)
    return query.urlencode()


def _allowed_actions(organisation: Organisation) -> list[tuple[str, str]]:
    return [(action, KYC_LABELS[action]) for action, (applies_to, _status) in services.KYC_ACTIONS.items()
            if organisation.kyc_status in applies_to]


def _detail(request, actor, organisation_id, *, failed: tuple[str, AppError, dict] | None = None, status: int = 200):
    try:
        organisation = selectors.participant(organisation_id)
    except AppError as exc:
        raise Http404(exc.detail) from None
    member_tier = getattr(organisation, "fee_tier", None)
    return render(request, "supervision/participant.html", {
        "actor": actor, "organisation": organisation, "history": selectors.participant_history(organisation),
        "actions": _allowed_actions(organisation), "owners": selectors.owner_choices(),
        "tiers": list(FeeTier.objects.order_by("-is_default", "taker_bps", "code")),
        "tier_code": member_tier.tier.code if member_tier else "", "may_decide": "supervise" in actor.scopes,
        "failed": failed and {"form": failed[0], "error": failed[1], "data": failed[2]},
    }, status=status)


@login_required
@require_GET
def participant(request, organisation_id: int):
    try:
        actor = _reader(request)
    except AppError as exc:
        return refused(request, exc)
    return _detail(request, actor, organisation_id)


def _decide(request, organisation_id: int, form: str, data: dict, decide, success):
    try:
        actor = _decider(request)
    except AppError as exc:
        return refused(request, exc)
    try:
        organisation = decide(actor)
    except AppError as exc:
        if exc.status_code == 404:
            raise Http404(exc.detail) from None
        return _detail(request, actor, organisation_id, failed=(form, exc, data),
                       status=exc.status_code if 400 <= exc.status_code < 500 else 400)
    messages.success(request, success(organisation))
    if request.POST.get("next") == "queue":
        return redirect("supervision:participants")
    return redirect("supervision:participant", organisation_id=organisation_id)


@login_required
@require_POST
def kyc_decide(request, organisation_id: int):
    action, reason = request.POST.get("action", ""), request.POST.get("reason", "")
    # A checkbox: sent when ticked; the form ticks it by default.
    cancel_orders = request.POST.get("cancel_orders") == "yes"
    return _decide(
        request, organisation_id, "kyc", {"action": action, "reason": reason, "cancel_orders": cancel_orders},
        lambda actor: services.kyc_decide(actor=actor, organisation_id=organisation_id, action=action, reason=reason,
                                          cancel_orders=cancel_orders),
        lambda org: _("%(name)s: KYC %(status)s. The organisation has been told.") % {
            "name": org.name, "status": org.get_kyc_status_display().lower()})


@login_required
@require_POST
def owner_assign(request, organisation_id: int):
    owner_id, reason = request.POST.get("owner_id", ""), request.POST.get("reason", "")
    return _decide(
        request, organisation_id, "owner", {"owner_id": owner_id, "reason": reason},
        lambda actor: services.owner_assign(actor=actor, organisation_id=organisation_id, owner_id=owner_id,
                                            reason=reason),
        lambda org: _("%(name)s moved to the group %(owner)s.") % {"name": org.name, "owner": org.beneficial_owner.name})


@login_required
@require_POST
def tier_assign(request, organisation_id: int):
    tier, reason = request.POST.get("tier", ""), request.POST.get("reason", "")
    return _decide(
        request, organisation_id, "tier", {"tier": tier, "reason": reason},
        lambda actor: services.tier_assign(actor=actor, organisation_id=organisation_id, tier_code=tier, reason=reason),
        lambda org: _("%(name)s: fee tier changed.") % {"name": org.name})


@login_required
def owners(request):
    """Beneficial-owner groups, and a form to create one."""
    try:
        actor = _decider(request) if request.method == "POST" else _reader(request)
    except AppError as exc:
        return refused(request, exc)
    failed, status = None, 200
    if request.method == "POST":
        name, reason = request.POST.get("name", ""), request.POST.get("reason", "")
        try:
            owner = services.owner_create(actor=actor, name=name, reason=reason)
        except AppError as exc:
            failed, status = {"error": exc, "data": {"name": name, "reason": reason}}, exc.status_code
        else:
            messages.success(request, _("Group %(name)s created; move organisations into it from their pages.")
                             % {"name": owner.name})
            return redirect("supervision:owners")
    page = Paginator(selectors.owner_groups(), LIST_PAGE).get_page(request.GET.get("page"))
    return render(request, "supervision/owners.html", {
        "actor": actor, "page": page, "failed": failed, "may_decide": "supervise" in actor.scopes}, status=status)


@login_required
@require_GET
def tiers(request):
    try:
        actor = _reader(request)
    except AppError as exc:
        return refused(request, exc)
    return render(request, "supervision/tiers.html", {"actor": actor, "tiers": selectors.fee_tiers()})


@login_required
@require_GET
def attestors(request):
    try:
        actor = _reader(request)
    except AppError as exc:
        return refused(request, exc)
    page = Paginator(selectors.attestors(), LIST_PAGE).get_page(request.GET.get("page"))
    return render(request, "supervision/attestors.html", {"actor": actor, "page": page})
