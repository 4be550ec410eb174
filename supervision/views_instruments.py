"""The console's instrument pages: the instruments, compute classes and hubs, one instrument
with its history, and the one form target for every action (halt, resume, open, band).

A refused action is shown on a page of its own with its 4xx status and nothing written;
a done one returns to the page it was posted from with a message.
"""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from exchange.errors import AppError
from supervision import instruments as service
from supervision.views import console_actor, refused

PAGE_SIZE = 50
ACTIONS = ("halt", "resume", "open", "band")
SHOWN_CODES = 5  # a message names this many instruments, then counts the rest


def _can_act(actor) -> bool:
    return "supervise" in actor.scopes


def _day(value: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or not 2000 <= day.year <= 2999:
        raise AppError("invalid", _("The day must be a date, YYYY-MM-DD."), fields={"day": "YYYY-MM-DD"})
    return day


@login_required
def instruments_page(request):
    try:
        actor = console_actor(request)
        filters = {name: request.GET.get(name, "").strip() for name in ("class", "hub", "state", "day")}
        queryset = service.instrument_list(class_code=filters["class"], hub_code=filters["hub"],
                                           state=filters["state"], day=_day(filters["day"]))
    except AppError as exc:
        return refused(request, exc)
    return render(request, "supervision/instruments.html", {
        "page": Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page")), "filters": filters,
        "classes": service.class_list(), "hubs": service.hub_list(), "can_act": _can_act(actor),
        "states": [s for s in service.STATE_FILTERS if s and s != "all"],
    })


def _groups_page(request, kind: str):
    try:
        actor = console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    groups = service.class_list() if kind == "class" else service.hub_list()
    return render(request, "supervision/instrument_groups.html", {
        "kind": kind, "groups": groups, "can_act": _can_act(actor),
        "title": _("Compute classes") if kind == "class" else _("Hubs"),
    })


@login_required
def classes_page(request):
    return _groups_page(request, "class")


@login_required
def hubs_page(request):
    return _groups_page(request, "hub")


@login_required
def instrument_page(request, code: str):
    try:
        actor = console_actor(request)
        instrument = service.instrument_get(code=code)
    except AppError as exc:
        return refused(request, exc)
    return render(request, "supervision/instrument.html", {
        "instrument": instrument, "actions": service.instrument_actions(instrument=instrument),
        "can_act": _can_act(actor), "orders_choices": service.ORDERS,
        "band_min": service.BAND_BPS_MIN, "band_max": service.BAND_BPS_MAX,
        "auction_min": service.AUCTION_SECONDS_MIN, "auction_max": service.AUCTION_SECONDS_MAX,
    })


def _whole(value: str, name: str) -> int | None:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise AppError("invalid", _("%(name)s must be a whole number.") % {"name": name},
                       fields={name: "A whole number."}) from None


def _codes(instruments) -> str:
    codes = [i.code for i in instruments]
    shown = ", ".join(codes[:SHOWN_CODES])
    if len(codes) > SHOWN_CODES:
        shown += " " + _("and %(n)d more") % {"n": len(codes) - SHOWN_CODES}
    return shown


def _done(action: str, outcome) -> str:
    codes = _codes(outcome.instruments)
    if action == "halt":
        if outcome.record.details.get("orders") == "cancel":
            return _("Halted: %(codes)s. %(n)d open orders are being cancelled.") % {
                "codes": codes, "n": outcome.orders_cancelled}
        return _("Halted: %(codes)s. Open orders are kept.") % {"codes": codes}
    if action == "resume":
        ends = outcome.instruments[0].auction_ends_at
        return _("Resuming through a call auction that uncrosses at %(time)s: %(codes)s.") % {
            "codes": codes, "time": formats.time_format(timezone.localtime(ends), "H:i:s")}
    if action == "open":
        return _("%(codes)s uncrosses its auction now.") % {"codes": codes}
    return _("Price band of %(codes)s set to ±%(bps)d bp.") % {"codes": codes, "bps": outcome.instruments[0].band_bps}


def _act(request, actor):
    post = request.POST
    action, kind, code = post.get("action", ""), post.get("scope", "instrument"), post.get("code", "").strip()
    if action not in ACTIONS:
        raise AppError("invalid", _("Choose an action."), fields={"action": ", ".join(ACTIONS)})
    if kind not in service.SCOPES:
        raise AppError("invalid", _("Choose what the action applies to."), fields={"scope": ", ".join(service.SCOPES)})
    if kind != "market" and not code:
        raise AppError("invalid", _("Choose the instrument, class or hub."), fields={"code": "Required."})
    if kind != "instrument" and action in ("open", "band"):
        raise AppError("invalid", _("Opening an auction and the price band apply to one instrument."),
                       fields={"scope": "instrument"})
    scope, reason = service.Scope(kind, code if kind != "market" else ""), post.get("reason", "")
    if action == "halt":
        return service.instruments_halt(actor=actor, scope=scope, reason=reason, orders=post.get("orders", "keep"))
    if action == "resume":
        return service.instruments_resume(actor=actor, scope=scope, reason=reason,
                                          auction_seconds=_whole(post.get("auction_seconds", "").strip(), "auction_seconds"))
    if action == "open":
        return service.instrument_open(actor=actor, code=code, reason=reason)
    band = _whole(post.get("band_bps", "").strip(), "band_bps")
    return service.instrument_band_set(actor=actor, code=code, band_bps=band, reason=reason)


def _back(request) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("supervision:instruments")


@login_required
@require_POST
def action_post(request):
    try:
        actor = console_actor(request)
        outcome = _act(request, actor)
    except AppError as exc:
        return render(request, "supervision/instrument_refused.html", {"error": exc, "back": _back(request)},
                      status=exc.status_code if 400 <= exc.status_code < 500 else 400)
    messages.success(request, _done(request.POST["action"], outcome))
    return redirect(_back(request))
