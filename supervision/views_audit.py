"""The console's audit trail, replay and provenance pages. Times on them are China time."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.views.decorators.http import require_GET

from accounts.models import Organisation
from exchange.errors import AppError
from exchange.models import Instrument
from exchange.money import cny
from exchange.wire import whole_number
from marketplace.models import ComputeAsset
from supervision.audit import (
    KIND_LABELS, KINDS, AuditFilters, audit_csv_chunks, audit_filters_parse, audit_page, describe, page_size_parse,
)
from supervision.provenance import provenance_asset_report, provenance_chain_report
from supervision.replay import TRADE_FIELDS, Replay
from supervision.streaming import streamed
from supervision.views import console_actor, refused

MARK = "<!--replay-->"


@login_required
@require_GET
def audit(request):
    try:
        console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    error, page, filters = None, None, AuditFilters()
    try:
        filters = audit_filters_parse(request.GET, local=True)
        page = audit_page(filters=filters, cursor=request.GET.get("cursor"),
                          limit=page_size_parse(request.GET.get("page_size")))
    except AppError as exc:
        error = exc
    query = request.GET.copy()
    query.pop("cursor", None)
    first = query.urlencode()

    def link(cursor: str | None) -> str:
        linked = query.copy()
        if cursor:
            linked["cursor"] = cursor
        return linked.urlencode()

    context = {
        "rows": [(row, describe(row), KIND_LABELS[row.kind]) for row in page.rows] if page else [],
        "error": error, "older": link(page.next_cursor) if page and page.next_cursor else None,
        "newer": link(page.previous_cursor) if page and page.has_previous else None,
        "newest": first if page and page.has_previous and page.previous_cursor else None, "csv_query": first,
        "kinds": [(kind, KIND_LABELS[kind], kind in filters.kinds and len(filters.kinds) < len(KINDS))
                  for kind in KINDS],
        "organisations": Organisation.objects.order_by("name").values_list("id", "name"),
        # As sent: the page's time inputs send China time.
        "params": {name: request.GET.get(name, "") for name in ("organisation", "instrument", "from", "to")},
    }
    return render(request, "supervision/audit.html", context, status=400 if error else 200)


@login_required
@require_GET
def audit_csv(request):
    try:
        console_actor(request)
        filters = audit_filters_parse(request.GET, local=True)
    except AppError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status_code)
    response = streamed(request, audit_csv_chunks(filters=filters, language=translation.get_language()),
                        content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
    return response


def _difference_rows(report) -> list[tuple]:
    """(field, stored, replayed, differs) for the first difference's fill(s), prices in CNY."""
    difference = report.first_difference
    if difference is None:
        return []
    rows = []
    for name in TRADE_FIELDS:
        expected, got = ((fill or {}).get(name) for fill in (difference.expected, difference.got))
        if name == "price_fen":
            name, expected, got = "price", expected and cny(expected), got and cny(got)
        rows.append((name, expected, got, expected != got))
    return rows


def _replay_chunks(request, instrument: Instrument):
    """The page up to the result, a progress step per few thousand commands, the result, the
    rest of the page: a long replay shows how far it has gone."""
    page = render_to_string("supervision/replay.html", {"instrument": instrument, "code": instrument.code,
                                                        "running": True}, request=request)
    head, tail = page.split(MARK, 1)
    yield head.encode()
    replay = Replay(instrument)
    for done, total in replay.run():
        yield f"<script>replayProgress({done}, {total})</script>\n".encode()
    yield render_to_string("supervision/_replay_result.html", {"report": replay.report,
                                                               "difference": _difference_rows(replay.report)},
                           request=request).encode()
    yield tail.encode()


@login_required
@require_GET
def replay(request):
    try:
        console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    code = request.GET.get("instrument", "").strip()
    if not code:
        return render(request, "supervision/replay.html", {"code": ""})
    instrument = Instrument.objects.filter(code=code[:40]).first()
    if instrument is None:
        return render(request, "supervision/replay.html", {"code": code, "unknown": True}, status=404)
    return streamed(request, _replay_chunks(request, instrument), content_type="text/html; charset=utf-8")


@login_required
@require_GET
def provenance(request):
    try:
        console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    raw = request.GET.get("asset", "").strip()
    context, status = {"asset_param": raw}, 200
    if raw:
        asset_id = whole_number(raw)
        asset = ComputeAsset.objects.filter(pk=asset_id).first() if asset_id is not None else None
        if asset is None:
            context["unknown"], status = True, 404
        else:
            context.update(asset=asset, report=provenance_asset_report(asset=asset))
    elif request.GET.get("chain"):
        context["report"] = provenance_chain_report()
    context["api"] = reverse("api:supervision-provenance")
    return render(request, "supervision/provenance.html", context, status=status)
