"""Statement pages: ``/settlement/statements/`` and its CSV, ``/settlement/statements.csv``.

Both take the same query: ``period`` (day, week or month) with ``on`` (a day in it; today
by default), or ``from`` and ``to`` (the first and the last day included), all China time;
no period means this month. Members of an organisation read its statements; a regulator
reads any organisation's with ``organisation=<id>``.
"""

from __future__ import annotations

import csv
from calendar import monthrange
from collections.abc import Iterator
from datetime import date, timedelta
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET

from accounts.access import Actor, actor_from_user, check_actor, check_supervisor
from accounts.models import Organisation
from exchange.errors import AppError, NotFound
from exchange.money import cny
from exchange.wire import whole_number
from marketplace.periods import CHINA, china_midnight, china_today
from settlement.statements import (
    ACCOUNT_KINDS, ACCOUNT_LABELS, DETAIL_LIMIT, JOURNAL_LABELS, Line, Period, percent, statement_build,
    statement_lines,
)

PRESETS = ("day", "week", "month")
# Dates a statement may name: wide enough for any real one, narrow enough that no
# arithmetic on them leaves what datetime can hold.
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)
CSV_HEADER = ["date", "kind", "journal", "trade", "allocation", "order", "description", *ACCOUNT_KINDS]


# --------------------------------------------------------------------------- input


def _invalid(name: str, message: str) -> AppError:
    return AppError("invalid_period", message, fields={name: message})


def _day(params, name: str) -> date | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        if len(raw) > 10:
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise _invalid(name, _("“%(value)s” is not a date; use YYYY-MM-DD.") % {"value": raw[:20]}) from None
    if not EARLIEST <= day <= LATEST:
        raise _invalid(name, _("Choose a date between %(earliest)s and %(latest)s.") % {
            "earliest": EARLIEST, "latest": LATEST})
    return day


def _preset_days(preset: str, on: date) -> tuple[date, date]:
    if preset == "day":
        return on, on
    if preset == "week":  # Monday to Sunday
        monday = on - timedelta(days=on.weekday())
        return monday, monday + timedelta(days=6)
    return on.replace(day=1), on.replace(day=monthrange(on.year, on.month)[1])


def period_from_params(params, *, today: date) -> Period:
    """The period a query names; AppError 400 (``invalid_period``) naming the field otherwise."""
    preset = params.get("period", "").strip()
    if preset and preset not in PRESETS:
        raise _invalid("period", _("The period is day, week or month."))
    first, last = _day(params, "from"), _day(params, "to")
    if first or last:  # chosen dates win over a preset
        if not (first and last):
            name = "to" if first else "from"
            raise _invalid(name, _("Give both the first day (from) and the last day (to) of the period."))
        if last < first:
            message = _("The period ends (%(to)s) before it starts (%(from)s).") % {"to": last, "from": first}
            raise _invalid("to", message)
        preset = ""
    else:
        preset = preset or "month"
        first, last = _preset_days(preset, _day(params, "on") or today)
        if not EARLIEST <= first <= last <= LATEST:
            raise _invalid("on", _("Choose a date between %(earliest)s and %(latest)s.") % {
                "earliest": EARLIEST, "latest": LATEST})
    return Period(start=china_midnight(first), end=china_midnight(last + timedelta(days=1)), first_day=first,
                  last_day=last, preset=preset)


def statement_subject(request) -> tuple[Actor, Organisation]:
    """Whose statement the request may read: the caller's own organisation, or — for a
    regulator — the one named by ``organisation``. Another organisation's is a 404 to
    anyone else (whether it exists is none of their business)."""
    actor = actor_from_user(request.user)
    check_actor(actor, scope="read", acting=False)
    raw = request.GET.get("organisation", "").strip()
    if raw in ("", str(actor.organisation.pk)):
        return actor, actor.organisation
    organisation_id = whole_number(raw)
    if organisation_id is None:
        message = _("The organisation is given by its number.")
        raise AppError("invalid", message, fields={"organisation": message})
    if not actor.is_regulator:
        raise NotFound(_("There is no statement of that organisation for you."), code="statement_not_found")
    check_supervisor(actor)
    organisation = Organisation.objects.filter(pk=organisation_id).first()
    if organisation is None:
        raise NotFound(_("There is no organisation %(id)s.") % {"id": raw}, code="organisation_not_found")
    return actor, organisation


# --------------------------------------------------------------------------- the page


def _links(period: Period, organisation_id: int | None) -> dict:
    """Query strings for the presets around the period, the neighbouring periods, and the CSV."""
    extra = {"organisation": organisation_id} if organisation_id else {}

    def query(**params) -> str:
        return "?" + urlencode({**params, **extra})

    on = period.first_day
    links = {preset: query(period=preset, on=on) for preset in PRESETS}
    if period.preset:
        step = {"day": timedelta(days=1), "week": timedelta(days=7)}.get(period.preset)
        before = on - step if step else (on - timedelta(days=1)).replace(day=1)
        after = on + step if step else period.last_day + timedelta(days=1)
        links["previous"] = query(period=period.preset, on=before) if before >= EARLIEST else None
        links["next"] = query(period=period.preset, on=after) if after <= LATEST else None
        links["csv"] = query(period=period.preset, on=on)
    else:
        links["csv"] = query(**{"from": period.first_day, "to": period.last_day})
    return links


@login_required
@require_GET
def statement_page(request):
    try:
        actor, organisation = statement_subject(request)
    except AppError as exc:
        return render(request, "settlement/statement.html", {"refused": exc}, status=exc.status_code)
    context = {"actor": actor, "organisation": organisation, "params": request.GET,
               "account_labels": [ACCOUNT_LABELS[k] for k in ACCOUNT_KINDS]}
    if actor.is_regulator and actor.organisation.kind == Organisation.Kind.REGULATOR:  # as check_supervisor
        context["organisations"] = Organisation.objects.order_by("name").values_list("id", "name")
    try:
        period = period_from_params(request.GET, today=china_today(timezone.now()))
    except AppError as exc:
        return render(request, "settlement/statement.html", {**context, "error": exc}, status=400)
    statement = statement_build(organisation=organisation, period=period, limit=DETAIL_LIMIT)
    other = organisation.pk if organisation.pk != actor.organisation.pk else None
    context.update(statement=statement, period=period, links=_links(period, other),
                   csv_url=reverse("statements:csv"), limit=DETAIL_LIMIT)
    return render(request, "settlement/statement.html", context)


# --------------------------------------------------------------------------- the CSV


class _Echo:
    """A file for csv.writer that hands each written row back instead of keeping it."""

    def write(self, value: str) -> str:
        return value


def _when(moment) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def describe(line: Line) -> str:
    """A journal line in words, in the active language."""
    if line.kind == "trade" and line.qty is not None:
        text = (_("Bought %(qty)s SCU·h of %(instrument)s at %(price)s") if line.bought
                else _("Sold %(qty)s SCU·h of %(instrument)s at %(price)s"))
        parts = [text % {"qty": line.qty, "instrument": line.instrument, "price": cny(line.price_fen)}]
    else:
        parts = [str(JOURNAL_LABELS.get(line.kind, line.kind))]
        if line.instrument:
            parts.append(line.instrument)
    if line.owners:
        parts.append("; ".join(f"{name} {cny(fen)} ({percent(bp)})" for name, fen, bp in line.owners))
    if line.memo:
        parts.append(line.memo)
    text = " · ".join(parts)
    # A spreadsheet runs a cell that starts like a formula; organisation names and memos are
    # other people's text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _fen_cells(amounts: dict) -> list[str]:
    return ["" if amounts[k] is None else cny(amounts[k]) for k in ACCOUNT_KINDS]


def csv_chunks(*, organisation_id: int, period: Period, language: str) -> Iterator[bytes]:
    """The CSV in pieces: the opening balance, every line of the period, then the total of the
    lines and the closing balance (opening + that total)."""
    writer = csv.writer(_Echo())
    with translation.override(language):
        yield ("\ufeff" + writer.writerow(CSV_HEADER)).encode()  # the mark tells spreadsheets it is UTF-8
        opening, total, count = dict.fromkeys(ACCOUNT_KINDS, 0), dict.fromkeys(ACCOUNT_KINDS, 0), 0
        for lines in statement_lines(organisation_id=organisation_id, period=period):
            out = []
            for line in lines:
                if line.part == 0:
                    opening = {k: v or 0 for k, v in line.amounts.items()}
                    out.append(writer.writerow([_when(period.start), "opening", "", "", "", "",
                                                _("Opening balance"), *_fen_cells(opening)]))
                    continue
                count += 1
                for k in ACCOUNT_KINDS:
                    total[k] += line.amounts[k] or 0
                out.append(writer.writerow([
                    _when(line.at), line.kind, line.journal_id, line.trade_id or "", line.allocation_id or "",
                    line.order_id or "", describe(line), *_fen_cells(line.amounts)]))
            yield "".join(out).encode()
        closing = {k: opening[k] + total[k] for k in ACCOUNT_KINDS}
        moved = ngettext("Movements in the period (%(count)s line)", "Movements in the period (%(count)s lines)",
                         count) % {"count": count}
        yield "".join([
            writer.writerow([_when(period.end), "total", "", "", "", "", moved, *_fen_cells(total)]),
            writer.writerow([_when(period.end), "closing", "", "", "", "", _("Closing balance"), *_fen_cells(closing)]),
        ]).encode()


async def _served_async(chunks: Iterator[bytes]):
    # Under ASGI, Django reads a synchronous iterator whole before sending any of it. Each
    # piece is read on the request's own thread (thread-sensitive), where the database
    # connection and its server-side cursor live.
    take = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    try:
        while (chunk := await take()) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()


@login_required
@require_GET
def statement_csv(request):
    try:
        _actor, organisation = statement_subject(request)
        period = period_from_params(request.GET, today=china_today(timezone.now()))
    except AppError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status_code)
    chunks = csv_chunks(organisation_id=organisation.pk, period=period, language=translation.get_language())
    response = StreamingHttpResponse(_served_async(chunks) if isinstance(request, ASGIRequest) else chunks,
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="statement-{organisation.pk}-{period.first_day}-{period.last_day}.csv"')
    return response
