"""Site-wide pages: home, health, error pages, markets."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, gettext as _

from accounts.selectors import membership_current
from exchange import ledger
from exchange.models import Instrument
from exchange.money import cny
from exchange.selectors import fee_bps, instrument_list, ticker, trades_24h
from exchange.selectors_overview import capacity_totals, market_rows, overview_instruments
from exchange.templatetags.order_states import ORDER_STATUS_LABELS
from exchange.wire import whole_number
from marketplace.models import ComputeClass, Hub

log = logging.getLogger(__name__)


def site_context(request):
    return {"DEMO_MODE": settings.DEMO_MODE}


HOME_MARKETS = 8


def home(request):
    """The busiest instruments and the capacity on offer; the rest on /markets/."""
    return render(request, "home.html", {"overview": _overview(limit=HOME_MARKETS)})


def _kept(key: str, build, *, keep: bool = True):
    """``build()``, kept in the cache for ``MARKET_OVERVIEW_CACHE_SECONDS`` under ``key`` (public
    market data only: nothing that decides access or funds). The cache is a shortcut: one that
    cannot be reached costs the shortcut, not the page. ``keep=False``: built afresh, not kept."""
    keep = keep and settings.MARKET_OVERVIEW_CACHE_SECONDS > 0
    if keep:
        try:
            part = cache.get(key)
        except Exception:
            log.warning("the market overview's cache could not be read; rendering the overview", exc_info=True)
            part, keep = None, False
        if part is not None:
            return part
    part = build()
    if keep:
        try:
            cache.set(key, part, settings.MARKET_OVERVIEW_CACHE_SECONDS)
        except Exception:
            log.warning("the market overview could not be kept in the cache", exc_info=True)
    return part


def _overview(*, limit: int | None = None, filters: dict[str, str] | None = None, page: str | None = None) -> dict:
    """The market overview's public part, the same for every visitor: the capacity totals and
    the table of instruments as HTML, and where the page is among the pages (``limit``: the
    busiest ``limit`` instruments, no pages).

    Kept for ``MARKET_OVERVIEW_CACHE_SECONDS`` per language, filters and page: fifty people
    reading the markets ask for the same page many times a second, and rendering its forty
    rows was most of the page's cost. Prices, volumes and states then follow the market live
    over /ws/market/ in the page."""
    filters = filters or {}

    def build() -> dict:
        queryset = overview_instruments(class_code=filters.get("class") or None, hub_code=filters.get("hub") or None,
                                        state=filters.get("state") or None)
        if limit is not None:
            instruments, pages = queryset[:limit], None
        else:
            current = Paginator(queryset, MARKETS_PER_PAGE).get_page(page)
            instruments = current.object_list
            pages = {"number": current.number, "count": current.paginator.num_pages,
                     "previous": current.previous_page_number() if current.has_previous() else None,
                     "next": current.next_page_number() if current.has_next() else None}
        rows = market_rows(instruments)
        return {"totals": render_to_string("exchange/_capacity_totals.html", {"totals": capacity_totals()}),
                "table": render_to_string("exchange/_market_table.html", {"rows": rows}) if rows else "",
                "pages": pages}

    # A page number a person can type and filters as short as codes are kept; anything else is
    # answered without the cache.
    keep = (page is None or whole_number(page, digits=4) is not None) and all(len(v) <= 32 for v in filters.values())
    key = "overview:" + urlencode([("lang", get_language()), ("limit", limit or ""), ("page", page or ""),
                                   *sorted(filters.items())])
    return _kept(key, build, keep=keep)


def _filter_choices() -> dict:
    """The classes and hubs /markets/ filters by, as (code, label) pairs (hubs' names are in the
    page's language)."""
    return _kept("overview-filters:" + get_language(), lambda: {
        "classes": [(code, code) for code in ComputeClass.objects.values_list("code", flat=True)],
        "hubs": [(hub.code, f"{hub.code} · {hub.name}") for hub in Hub.objects.all()],
    })


def _database_and_engine_lag() -> tuple[str | None, float | None]:
    """(what failed reading the database, or None; seconds the oldest unprocessed inbox
    command has waited, or None if none waits). One query answers both.

    Every shard's engine takes its commands in sequence order, so a runner that stopped or
    fell behind shows here however its process looks from outside (a runner looping on one
    command is alive, yet the inbox grows behind it)."""
    try:
        with connection.cursor() as cursor:
            # ORDER BY seq: the partial index of pending commands answers it without a scan.
            cursor.execute("SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 "
                           "FROM exchange_inboxcommand WHERE processed_at IS NULL ORDER BY seq LIMIT 1")
            row = cursor.fetchone()
    except Exception as exc:  # reported, not raised: this is the health check
        return f"{type(exc).__name__}: {exc}", None
    return None, (row[0] if row else None)


async def _channel_layer_ok() -> str | None:
    layer = get_channel_layer()
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=2)
        if message.get("type") != "health.ping":
            return "channel layer returned the wrong message"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def healthz(request):
    """Database and channel layer reachable and the engine keeping up with its inbox → 200,
    else 503 naming what failed (``HEALTH_ENGINE_LAG_SECONDS``)."""
    started = time.monotonic()
    problems = {}
    error, lag = await sync_to_async(_database_and_engine_lag)()
    if error:
        problems["database"] = error
    else:
        limit = settings.HEALTH_ENGINE_LAG_SECONDS
        if lag is not None and lag > limit:
            problems["engine"] = (f"behind: the oldest unprocessed inbox command has waited {lag:.0f} s "
                                  f"(more than {limit} s)")
    if error := await _channel_layer_ok():
        problems["channel_layer"] = error
    body = {
        "status": "ok" if not problems else "unavailable",
        "database": "ok" if "database" not in problems else problems["database"],
        "channel_layer": "ok" if "channel_layer" not in problems else problems["channel_layer"],
        "engine": problems.get("engine", "ok" if "database" not in problems else "unknown"),
        "engine_lag_s": round(lag or 0.0, 1),
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return JsonResponse(body, status=200 if not problems else 503)


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def page_not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"code": "not_found", "detail": f"No API endpoint at {request.path}.", "fields": {}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if _wants_json(request):
        return JsonResponse(
            {"code": "server_error", "detail": "Something failed on our side; nothing was changed. Try again, "
             "and contact the operator if it persists.", "fields": {}},
            status=500,
        )
    return render(request, "500.html", status=500)


def csrf_failure(request, reason=""):
    return render(request, "403_csrf.html", status=403)


MARKETS_PER_PAGE = 40


def markets(request):
    """Every tradeable instrument, those that trade first, with its last 24 h; prices update
    live over /ws/market/."""
    filters = {name: request.GET.get(name) or "" for name in ("class", "hub", "state")}
    chosen = {name: value for name, value in filters.items() if value}
    return render(request, "exchange/markets.html", {
        "overview": _overview(filters=chosen, page=request.GET.get("page")),
        **_filter_choices(), "states": Instrument.State.choices,
        "filters": filters, "filter_query": urlencode(chosen),
    })


def _terminal_texts() -> dict:
    """What the terminal's script writes into the page, in the page's language."""
    return {
        "live": _("Live"), "reconnecting": _("Reconnecting…"), "connecting": _("Connecting…"),
        "cancel": _("Cancel"), "amend": _("Amend"), "save": _("Save"), "back": _("Back"),
        "cancelling": _("Cancel requested"), "market": _("market"), "buy": _("Buy"), "sell": _("Sell"),
        "notional": _("Value"), "fee_up_to": _("fee up to"), "hold": _("held"), "receive": _("you receive at least"),
        "at_touch": _("estimated at the best price on the other side"), "no_touch": _("no price on the other side yet"),
        "short": _("More than your available funds."), "confirm": _("Place this order worth %(value)s CNY?"),
        "gate_closed": _("Gate closed"), "closes_in": _("closes in"),
        "auction_ends": _("auction ends"), "spread": _("Spread"),
        "statuses": {status: str(label) for status, label in ORDER_STATUS_LABELS.items()},
    }


def market_detail(request, code: str):
    instrument = get_object_or_404(instrument_list(), code=code)
    membership = membership_current(user=request.user)
    can_trade = bool(membership and membership.role in ("trader", "provider_admin")
                     and membership.organisation.is_verified)
    balances = ledger.balances(organisation=membership.organisation) if membership else None
    maker_bps, taker_bps = fee_bps(organisation_id=membership.organisation_id) if membership else (0, 0)
    terminal = {
        "code": instrument.code, "id": instrument.id, "gate_closure_at": instrument.gate_closure_at.isoformat(),
        "auction_ends_at": instrument.auction_ends_at.isoformat() if instrument.auction_ends_at else None,
        "can_trade": can_trade, "signed_in": membership is not None, "taker_bps": taker_bps,
        "available": cny(balances["available"]) if balances else None,
        "confirm_above": settings.ORDER_CONFIRM_ABOVE_CNY, "texts": _terminal_texts(),
    }
    return render(request, "exchange/market_detail.html", {
        "instrument": instrument, "ticker": ticker(instrument=instrument, day=_kept(
            f"trades-24h:{instrument.id}", lambda: trades_24h(instrument_id=instrument.id))),
        "membership": membership,
        "can_trade": can_trade, "balances": balances, "maker_bps": maker_bps, "taker_bps": taker_bps,
        "terminal": terminal,
    })


def funds_topup(request):
    """Demo mode only: add demo funds to the signed-in person's organisation."""
    if not settings.DEMO_MODE:
        raise Http404("Top-ups exist only in demo mode.")
    if request.method != "POST" or not request.user.is_authenticated:
        return redirect("markets")
    membership = membership_current(user=request.user)
    if membership is None or membership.organisation.is_suspended:
        messages.error(request, _("Your organisation cannot receive funds."))
    else:
        ledger.deposit(organisation=membership.organisation, amount_fen=1_000_000_00, memo="demo top-up")
        messages.success(request, _("Added 1,000,000.00 CNY of demo funds."))
    target = request.POST.get("next", "")
    # Only back to a page of this site.
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "markets"
    return redirect(target)
