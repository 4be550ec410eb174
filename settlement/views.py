"""Settlement pages: the provider's delivery desk, the metering upload, the holder's capacity
and the published SLA credit schedule.

Every change goes through ``settlement.services``; an AppError is shown on the page that
was posted from, with its 4xx status, and nothing is written.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Case, Count, DecimalField, Exists, OuterRef, Prefetch, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import Actor, actor_from_user, check_actor
from accounts.models import Organisation
from exchange.errors import AppError, Forbidden
from exchange.models import Allocation
from exchange.wire import json_parse
from settlement.forms import STATES, MeteringUploadForm, StateFilterForm
from settlement.models import Delivery, Dispute, MeterReport, Settlement, SlaCreditStep
from settlement.selectors import ALLOCATION_RELATED, Window, allocation_window, delivery_credentials, scu_h_of
from settlement.services import CSV_MAX_ROWS, delivery_answer, delivery_start, dispute_open, metering_import, metering_report

PAGE_SIZE = 20
# The browser sends a CSV in parts of this many rows (each a request of a second or two);
# a part's text is refused above CHUNK_MAX_CHARS.
CHUNK_ROWS = 200
CHUNK_MAX_CHARS = 512 * 1024
# Rows one upload in the browser may hold: parts keep each request short, so the limit is
# the results table the page keeps, not the server.
BROWSER_MAX_ROWS = 5 * CSV_MAX_ROWS


# --- access ----------------------------------------------------------------------------------

def _actor(request, *, provider: bool = False, acting: bool = False) -> Actor:
    """The signed-in person's actor; for ``provider`` pages, of a provider organisation."""
    actor = actor_from_user(request.user)
    if provider and actor.organisation.kind != Organisation.Kind.PROVIDER:
        raise Forbidden(f"{actor.organisation.name} is not a provider organisation; deliveries are made by the "
                        "provider operating the asset.", code="not_a_provider")
    check_actor(actor, scope="provide" if provider and acting else "read", acting=acting)
    return actor


def _status(exc: AppError) -> int:
    return exc.status_code if 400 <= exc.status_code < 500 else 400


def _refused(request, exc: AppError):
    return render(request, "marketplace/refused.html", {"error": exc}, status=_status(exc))


# --- reading allocations ---------------------------------------------------------------------

def _annotated(queryset):
    """Allocations with their metered device-hours, whether a dispute is open, and one state
    for the desk's filter (settled, disputed, metered, delivering, to start: the first that holds)."""
    metered = (MeterReport.objects.filter(allocation=OuterRef("pk")).order_by().values("allocation")
               .annotate(total=Sum("device_hours")).values("total"))
    amount = DecimalField(max_digits=18, decimal_places=4)
    return queryset.annotate(
        metered=Coalesce(Subquery(metered, output_field=amount), Value(Decimal(0), output_field=amount)),
        dispute_open=Exists(Dispute.objects.filter(allocation=OuterRef("pk"), state=Dispute.State.OPEN)),
    ).annotate(desk_state=Case(
        When(settled_at__isnull=False, then=Value("settled")),
        When(dispute_open=True, then=Value("disputed")),
        When(metered__gt=0, then=Value("metered")),
        When(delivery__started_at__isnull=False, then=Value("delivering")),
        default=Value("to_start"),
    ))


def _page(request, queryset):
    """A page of allocations, newest delivery window first, with what a row shows loaded
    alongside: a fixed number of queries whatever the page holds."""
    queryset = queryset.select_related(*ALLOCATION_RELATED, "delivery", "settlement").prefetch_related(
        Prefetch("disputes", queryset=Dispute.objects.order_by("-id"))
    ).order_by("-trade__instrument__delivery_start", "-id")
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


@dataclass
class Failed:
    """A form that was refused: shown again at its allocation, with what was typed (never credentials)."""

    allocation_id: int
    form: str
    error: AppError
    data: dict


@dataclass
class Row:
    """One allocation as a page shows it, with what the viewer may do to it now."""

    allocation: Allocation
    delivery: Delivery | None
    dispute: Dispute | None
    settlement: Settlement | None
    metered_scu_h: int
    window: Window
    is_seller: bool
    error: Failed | None = None
    credentials: str | None = None
    actions: set[str] = field(default_factory=set)

    @property
    def value_fen(self) -> int:
        return self.allocation.scu_h * self.allocation.trade.price_fen

    @property
    def state_label(self) -> str:
        return dict(STATES)[self.allocation.desk_state]


def _rows(page, *, actor: Actor, holder: bool, failed: Failed | None) -> list[Row]:
    now = timezone.now()
    rows = [_row(allocation, actor=actor, holder=holder, now=now) for allocation in page.object_list]
    for row in rows:
        if failed is not None and failed.allocation_id == row.allocation.id:
            row.error = failed
    return rows


def _row(allocation: Allocation, *, actor: Actor, holder: bool, now) -> Row:
    window = allocation_window(allocation)
    disputes = list(allocation.disputes.all())
    row = Row(allocation=allocation, delivery=getattr(allocation, "delivery", None),
              dispute=disputes[0] if disputes else None, settlement=getattr(allocation, "settlement", None),
              metered_scu_h=scu_h_of(allocation.metered, allocation.listing_period.listing.factor), window=window,
              # A resold allocation's money is its reseller's business, not the delivering provider's.
              is_seller=allocation.trade.seller_id == actor.organisation.id)
    if allocation.settled_at is not None:
        return row
    started = row.delivery is not None and row.delivery.started_at is not None
    in_metering = window.start <= now <= window.dispute_until
    if holder:
        if started:
            row.credentials = delivery_credentials(actor=actor, allocation=allocation)
        if "trade" in actor.scopes:
            if started and row.delivery.state != Delivery.State.CONFIRMED:
                row.actions.add("confirm")
            if row.delivery is None or row.delivery.state != Delivery.State.MISSING:
                row.actions.add("missing")
            if in_metering and not allocation.dispute_open:
                row.actions.add("dispute")
    elif "provide" in actor.scopes:
        if now < window.end:
            row.actions.add("start")
        if in_metering:
            row.actions.add("meter")
    return row


def _back(request, name: str, allocation_id: int):
    query = request.GET.urlencode()
    return redirect(f"{reverse(name)}{'?' + query if query else ''}#allocation-{allocation_id}")


# --- the provider's desk ---------------------------------------------------------------------

def _desk(request, actor: Actor, *, failed: Failed | None = None, status: int = 200):
    form = StateFilterForm(request.GET)
    state = form.cleaned_data.get("state") if form.is_valid() else ""
    mine = _annotated(Allocation.objects.filter(listing_period__provider_id=actor.organisation.id))
    counts = dict(mine.order_by().values_list("desk_state").annotate(n=Count("pk")))
    page = _page(request, mine.filter(desk_state=state) if state else mine)
    return render(request, "settlement/deliveries.html", {
        "actor": actor, "form": form, "state": state, "page": page, "failed": failed,
        "rows": _rows(page, actor=actor, holder=False, failed=failed),
        "states": [(value, label, counts.get(value, 0) if value else sum(counts.values())) for value, label in STATES],
        "query": request.GET.urlencode(),
    }, status=400 if form.errors and status == 200 else status)


@login_required
def deliveries(request):
    try:
        actor = _actor(request, provider=True)
    except AppError as exc:
        return _refused(request, exc)
    return _desk(request, actor)


def _allocation_post(request, allocation_id: int, form: str, data: dict, action, success: str, *,
                     provider: bool):
    """A provider's (``provider=True``) or a holder's form on one allocation: do ``action``; a
    refusal of the person shows the refused page, a refusal of the input shows the same desk
    with the message by the form."""
    try:
        actor = _actor(request, provider=True, acting=True) if provider else _actor(request)
    except AppError as exc:
        return _refused(request, exc)
    try:
        action(actor)
    except AppError as exc:
        if exc.status_code in (401, 403, 404):
            return _refused(request, exc)
        page = _desk if provider else _capacity
        return page(request, actor, failed=Failed(allocation_id, form, exc, data), status=_status(exc))
    messages.success(request, success)
    return _back(request, "settlement:deliveries" if provider else "settlement:capacity", allocation_id)


@login_required
@require_POST
def delivery_start_view(request, allocation_id: int):
    endpoint, credentials = request.POST.get("endpoint", ""), request.POST.get("credentials", "")
    return _allocation_post(
        request, allocation_id, "start", {"endpoint": endpoint},
        lambda actor: delivery_start(actor=actor, allocation_id=allocation_id, endpoint=endpoint,
                                     credentials=credentials),
        _("Allocation %(id)s: delivery started; the holder sees the access details.") % {"id": allocation_id},
        provider=True)


@login_required
@require_POST
def metering_report_view(request, allocation_id: int):
    device_hours, note = request.POST.get("device_hours", ""), request.POST.get("note", "")
    return _allocation_post(
        request, allocation_id, "meter", {"device_hours": device_hours, "note": note},
        lambda actor: metering_report(actor=actor, allocation_id=allocation_id, device_hours=device_hours,
                                      source=MeterReport.Source.PAGE, note=note),
        _("Allocation %(id)s: %(hours)s device-hours reported.") % {"id": allocation_id, "hours": device_hours.strip()},
        provider=True)


# --- the holder's capacity -------------------------------------------------------------------

def _capacity(request, actor: Actor, *, failed: Failed | None = None, status: int = 200):
    page = _page(request, _annotated(Allocation.objects.filter(holder_id=actor.organisation.id)))
    return render(request, "settlement/capacity.html", {
        "actor": actor, "page": page, "failed": failed, "query": request.GET.urlencode(),
        "rows": _rows(page, actor=actor, holder=True, failed=failed),
    }, status=status)


@login_required
def capacity(request):
    try:
        actor = _actor(request)
    except AppError as exc:
        return _refused(request, exc)
    return _capacity(request, actor)


@login_required
@require_POST
def delivery_answer_view(request, allocation_id: int):
    working, note = request.POST.get("working") == "yes", request.POST.get("note", "")
    return _allocation_post(
        request, allocation_id, "answer", {"note": note},
        lambda actor: delivery_answer(actor=actor, allocation_id=allocation_id, working=working, note=note),
        (_("Allocation %(id)s: access confirmed.") if working else
         _("Allocation %(id)s: access reported missing; the provider has been told.")) % {"id": allocation_id},
        provider=False)


@login_required
@require_POST
def dispute_open_view(request, allocation_id: int):
    reason = request.POST.get("reason", "")
    return _allocation_post(
        request, allocation_id, "dispute", {"reason": reason},
        lambda actor: dispute_open(actor=actor, allocation_id=allocation_id, reason=reason),
        _("Allocation %(id)s: dispute opened; it settles once the regulator decides.") % {"id": allocation_id},
        provider=False)


# --- metering from a CSV file ----------------------------------------------------------------

def _counts(results: list[dict]) -> dict:
    reported = sum(1 for r in results if r["ok"])
    return {"reported": reported, "refused": len(results) - reported}


@login_required
def metering_upload(request):
    """The upload page. With JavaScript the browser sends the file in parts to
    :func:`metering_upload_chunk`; without, the form posts the whole file here."""
    try:
        actor = _actor(request, provider=True, acting=request.method == "POST")
    except AppError as exc:
        return _refused(request, exc)
    form = MeteringUploadForm(request.POST or None, request.FILES or None)
    results, error, status = None, None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                results = metering_import(actor=actor, text=form.cleaned_data["file"], source=MeterReport.Source.CSV)
            except AppError as exc:
                error, status = exc.detail, _status(exc)
            except csv.Error as exc:  # e.g. a field longer than the csv module takes
                error, status = _("This file cannot be read as CSV (%(reason)s).") % {"reason": exc}, 400
        else:
            error, status = " ".join(e for errors in form.errors.values() for e in errors), 400
    return render(request, "settlement/metering_upload.html", {
        "form": form, "results": results, "counts": _counts(results) if results is not None else None,
        "error": error, "chunk_rows": CHUNK_ROWS, "max_rows": BROWSER_MAX_ROWS,
        "max_rows_text": f"{BROWSER_MAX_ROWS:,}", "text": _upload_text(),
    }, status=status)


def _upload_text() -> dict:
    """What the page's script says, translated here."""
    return {
        "bad_header": _("This file is not a CSV with the header allocation_id,device_hours (and optionally ,note) "
                        "on its first line."),
        "binary": _("This is not a CSV text file (it holds binary data)."),
        "not_utf8": _("This is not a CSV text file (it is not UTF-8)."),
        "choose": _("Choose a CSV file first."),
        "empty": _("The file has no rows after the header."),
        "too_many": _("The file has %(n)s rows; at most %(max)s are taken in one upload. Split the file."),
        "progress": _("%(done)s / %(total)s rows · %(pct)s %%"),
        "stopped": _("Stopped before row %(row)s: %(detail)s Rows before it were processed; upload the rest "
                     "from row %(row)s on."),
        "http": _("The server did not take the part (HTTP %(status)s)."),
        "network": _("The connection failed."),
        "reported": _("reported"),
        "done": _("Done."),
    }


@require_POST
def metering_upload_chunk(request):
    """One part of a CSV upload: ``{"text": header + rows, "first_row": n}`` → per-row results (JSON)."""
    if not request.user.is_authenticated:
        return JsonResponse({"code": "not_authenticated", "detail": "Sign in again.", "fields": {}}, status=401)
    try:
        actor = _actor(request, provider=True, acting=True)
        body = json_parse(request.body)
        text, first_row = (body.get("text"), body.get("first_row")) if isinstance(body, dict) else (None, None)
        if not isinstance(text, str) or len(text) > CHUNK_MAX_CHARS:
            raise AppError("invalid", f"Send the part as text of at most {CHUNK_MAX_CHARS:,} characters.",
                           fields={"text": "Required text."})
        if type(first_row) is not int or not 1 <= first_row <= 10**7:
            raise AppError("invalid", "first_row is the number of the part's first row (1 or more).",
                           fields={"first_row": "A whole number from 1."})
        results = metering_import(actor=actor, text=text, source=MeterReport.Source.CSV, first_row=first_row)
    except AppError as exc:
        return JsonResponse(exc.as_dict(), status=_status(exc))
    except csv.Error as exc:
        return JsonResponse({"code": "invalid", "detail": f"This part cannot be read as CSV ({exc}).",
                             "fields": {"text": "Not CSV."}}, status=400)
    return JsonResponse({"results": results, **_counts(results)})


# --- the SLA schedule ------------------------------------------------------------------------

def sla(request):
    """The published SLA credit schedule: public, as the rules a trade is made under."""
    steps = list(SlaCreditStep.objects.order_by("-below_bp"))
    # Delivered between the next step's threshold and this one's earns the largest credit of
    # the steps it falls below (settlement.runner.sla_credit_bp): this one's and those above.
    bands = [(steps[i + 1].below_bp if i + 1 < len(steps) else 0, step.below_bp,
              max(s.credit_bp for s in steps[:i + 1])) for i, step in enumerate(steps)]
    return render(request, "settlement/sla.html", {"top": steps[0].below_bp if steps else None, "bands": bands})
