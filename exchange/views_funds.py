"""The funds page: a member asks to pay in or out and follows its requests; the operator's
treasury sees every pending request and completes or refuses it (exchange/funds.py)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import actor_from_user, check_actor, check_funds_recorder
from exchange import funds, ledger
from exchange.errors import AppError
from exchange.models import FundsRequest

PAGE_SIZE = 20


def _is_treasury(actor) -> bool:
    try:
        check_funds_recorder(actor)
    except AppError:
        return False
    return True


def _page(request, actor, *, failed: AppError | None = None, form: dict | None = None, status: int = 200):
    requests = Paginator(funds.funds_request_list(actor=actor), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "exchange/funds.html", {
        "actor": actor, "requests": requests, "treasury": _is_treasury(actor), "failed": failed, "form": form or {},
        "balances": ledger.balances(organisation=actor.organisation),
        "can_ask": "trade" in actor.scopes and actor.organisation.is_verified,
    }, status=status)


def _actor(request):
    actor = actor_from_user(request.user)
    check_actor(actor, scope="read", acting=False)
    return actor


@login_required
def funds_page(request):
    try:
        actor = _actor(request)
    except AppError as exc:
        return render(request, "marketplace/refused.html", {"error": exc}, status=exc.status_code)
    return _page(request, actor)


def _post(request, action, success):
    try:
        actor = _actor(request)
    except AppError as exc:
        return render(request, "marketplace/refused.html", {"error": exc}, status=exc.status_code)
    try:
        done = action(actor)
    except AppError as exc:
        if exc.status_code in (401, 403):
            return render(request, "marketplace/refused.html", {"error": exc}, status=exc.status_code)
        return _page(request, actor, failed=exc, form=request.POST.dict(), status=exc.status_code)
    messages.success(request, success(done))
    return redirect("funds")


@login_required
@require_POST
def funds_request_view(request):
    return _post(request, lambda actor: funds.funds_request_create(
        actor=actor, direction=request.POST.get("direction"), amount=request.POST.get("amount", ""),
        bank_account=request.POST.get("bank_account", "")),
        lambda r: (_("Deposit request %(ref)s: transfer %(amount)s CNY quoting %(ref)s; it is credited once the "
                     "treasury sees it arrive.") if r.direction == FundsRequest.Direction.DEPOSIT else
                   _("Withdrawal request %(ref)s for %(amount)s CNY sent to the treasury."))
        % {"ref": r.reference, "amount": request.POST.get("amount", "").strip()})


def _decision(name):
    action = {"cancel": lambda actor, rid, note: funds.funds_request_cancel(actor=actor, request_id=rid),
              "complete": lambda actor, rid, note: funds.funds_request_complete(actor=actor, request_id=rid, note=note),
              "refuse": lambda actor, rid, note: funds.funds_request_refuse(actor=actor, request_id=rid, note=note)}[name]

    @login_required
    @require_POST
    def view(request, request_id: int):
        return _post(request, lambda actor: action(actor, request_id, request.POST.get("note", "")),
                     lambda r: _("Request %(ref)s: %(state)s.") % {"ref": r.reference, "state": r.get_state_display()})
    return view


funds_cancel_view = _decision("cancel")
funds_complete_view = _decision("complete")
funds_refuse_view = _decision("refuse")
