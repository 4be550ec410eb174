"""The dispute queue page: open disputes first, each with its allocation, parties, metering
reports and reason, and the regulator's decision form. No delivery is read here, so a
holder's access credentials never reach the console."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.access import check_supervisor
from exchange.errors import AppError
from settlement.models import Dispute
from supervision.disputes import dispute_decide, dispute_facts, dispute_queue
from supervision.views import console_actor, refused

PAGE_SIZE = 20


def _queue(request, actor, *, failed: dict | None = None, status: int = 200):
    state = request.GET.get("state", "")
    state = state if state in Dispute.State.values else ""
    page = Paginator(dispute_queue(state=state or None), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "supervision/disputes.html", {
        "actor": actor, "page": page, "rows": [dispute_facts(d) for d in page.object_list], "state": state,
        "states": Dispute.State.choices, "failed": failed, "may_decide": "supervise" in actor.scopes,
        "query": request.GET.urlencode(),
    }, status=status)


@login_required
@require_GET
def disputes(request):
    try:
        actor = console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    return _queue(request, actor)


@login_required
@require_POST
def dispute_decide_view(request, dispute_id: int):
    try:
        actor = console_actor(request)
        check_supervisor(actor)
    except AppError as exc:
        return refused(request, exc)
    data = {key: request.POST.get(key, "") for key in ("outcome", "note", "delivered_device_hours")}
    try:
        dispute = dispute_decide(actor=actor, dispute_id=dispute_id, outcome=data["outcome"], note=data["note"],
                                 delivered_device_hours=data["delivered_device_hours"] or None)
    except AppError as exc:
        if exc.status_code == 404:
            return refused(request, exc)
        return _queue(request, actor, failed={"dispute_id": dispute_id, "error": exc, "data": data},
                      status=exc.status_code if 400 <= exc.status_code < 500 else 400)
    messages.success(request, _("Dispute %(id)s decided: %(outcome)s. The parties have been told.") % {
        "id": dispute.pk, "outcome": dispute.get_state_display()})
    query = request.GET.urlencode()
    return redirect(f"{reverse('supervision:disputes')}{'?' + query if query else ''}#dispute-{dispute.pk}")
