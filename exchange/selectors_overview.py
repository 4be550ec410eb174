"""Reads for the market overview (the home page and ``/markets/``): instruments that trade
first, each with its last day's volume, change and a sparkline; the capacity listed and sold.

Everything a page shows comes from a fixed number of queries, however many rows it has: the
instruments (ranked in SQL), one query for the trades of the rows shown, one for the totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from urllib.parse import quote
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Case, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from exchange.models import Instrument, Trade
from exchange.money import cny
from exchange.selectors import instrument_list
from marketplace.periods import china_midnight, china_today

WINDOW = timedelta(hours=24)
# The sparkline's box, in SVG user units (the page scales it).
SPARK_WIDTH, SPARK_HEIGHT = 60, 16


def overview_instruments(*, class_code: str | None = None, hub_code: str | None = None, state: str | None = None,
                         now: datetime | None = None) -> QuerySet[Instrument]:
    """Instruments, those that trade first: by the last 24 h's volume, then those with a quote,
    then those that ever traded, then by delivery. Without a state, closed instruments are left out."""
    since = (now or timezone.now()) - WINDOW
    volume = (Trade.objects.filter(instrument=OuterRef("pk"), created_at__gte=since).order_by()
              .values("instrument").annotate(v=Sum("qty")).values("v"))
    queryset = instrument_list(class_code=class_code, hub_code=hub_code, state=state)
    if not state:
        queryset = queryset.exclude(state=Instrument.State.CLOSED)
    return queryset.annotate(
        volume_24h=Coalesce(Subquery(volume, output_field=IntegerField()), Value(0)),
        quoted=Case(When(Q(best_bid_fen__isnull=False) | Q(best_ask_fen__isnull=False), then=Value(1)),
                    default=Value(0), output_field=IntegerField()),
        ever_traded=Case(When(last_price_fen__isnull=False, then=Value(1)), default=Value(0),
                         output_field=IntegerField()),
    ).order_by("-volume_24h", "-quoted", "-ever_traded", "delivery_start", "compute_class__code", "hub__sort_order", "id")


@dataclass
class MarketRow:
    """One instrument of the overview and its last 24 h."""

    instrument: Instrument
    volume_24h: int
    # The price 24 h ago (the last trade before the window; else the window's first trade),
    # then the close of each hour of the window that had trades. Integer fen.
    prices: list[int] = field(default_factory=list)
    # Written once here rather than by template tags per row: the page's largest cost was
    # forty rows of {% url %} and four date filters each.
    url: str = ""
    delivery: str = ""

    @property
    def change_fen(self) -> int | None:
        last = self.instrument.last_price_fen
        return last - self.prices[0] if self.prices and last is not None else None

    @property
    def change(self) -> str:
        """``+0.40`` / ``-1.20`` / ``0.00`` CNY, or ``—`` without trades to compare."""
        change = self.change_fen
        if change is None:
            return "—"
        return ("+" if change > 0 else "") + cny(change)

    @property
    def change_pct(self) -> str:
        """``+2.5 %``, rounded half up to a tenth of a percent; empty without a change."""
        change = self.change_fen
        if change is None or not self.prices[0]:
            return ""
        pct = (Decimal(change) * 100 / self.prices[0]).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        return f"{'+' if pct > 0 else ''}{pct} %"

    @property
    def direction(self) -> str:
        change = self.change_fen
        return "" if not change else ("up" if change > 0 else "down")

    @property
    def sparkline(self) -> str:
        return sparkline_points(self.prices)


def sparkline_points(prices: list[int]) -> str:
    """SVG polyline points for ``prices`` in a ``SPARK_WIDTH`` × ``SPARK_HEIGHT`` box: the
    highest at the top, the lowest at the bottom, a flat line across the middle when all are
    equal; empty for no prices."""
    if not prices:
        return ""
    if len(prices) == 1:
        prices = prices * 2
    low, high = min(prices), max(prices)
    step = SPARK_WIDTH / (len(prices) - 1)
    points = []
    for i, price in enumerate(prices):
        y = SPARK_HEIGHT / 2 if high == low else 1 + (high - price) * (SPARK_HEIGHT - 2) / (high - low)
        points.append(f"{i * step:.1f},{y:.1f}")
    return " ".join(points)


def market_rows(instruments, *, now: datetime | None = None) -> list[MarketRow]:
    """The rows for ``instruments`` (annotated by ``overview_instruments``), with one query for
    the prices of all of them."""
    instruments = list(instruments)
    if not instruments:
        return []
    since = (now or timezone.now()) - WINDOW
    ids = [i.id for i in instruments]
    with connection.cursor() as cursor:
        # The price before the window (the (instrument, -id) index reads back from the newest
        # trade), then each hour's first and last price in the window.
        cursor.execute(
            """SELECT ids.id, NULL::timestamptz AS bucket, NULL::bigint AS first_price,
                      (SELECT t.price_fen FROM exchange_trade t WHERE t.instrument_id = ids.id AND t.created_at < %(since)s
                       ORDER BY t.id DESC LIMIT 1) AS last_price
               FROM unnest(%(ids)s::bigint[]) AS ids(id)
               UNION ALL
               SELECT t.instrument_id, date_trunc('hour', t.created_at), (array_agg(t.price_fen ORDER BY t.id))[1],
                      (array_agg(t.price_fen ORDER BY t.id DESC))[1]
               FROM exchange_trade t WHERE t.instrument_id = ANY(%(ids)s) AND t.created_at >= %(since)s
               GROUP BY 1, 2
               ORDER BY 1, 2 NULLS FIRST""",
            {"ids": ids, "since": since},
        )
        rows = cursor.fetchall()
    prices: dict[int, list[int]] = {i: [] for i in ids}
    for instrument_id, bucket, first_price, last_price in rows:
        series = prices[instrument_id]
        if bucket is None:
            if last_price is not None:
                series.append(last_price)
        else:
            if not series:
                series.append(first_price)
            series.append(last_price)
    detail = reverse("market-detail", args=["CODE"])
    return [MarketRow(instrument=i, volume_24h=i.volume_24h, prices=prices[i.id],
                      url=detail.replace("CODE", quote(i.code, safe="")), delivery=delivery_label(i))
            for i in instruments]


def delivery_label(instrument: Instrument) -> str:
    """``2026-12-10`` for a whole China-time day, ``2026-12-10 14:05–14:10`` for a shorter window."""
    start, end = timezone.localtime(instrument.delivery_start), timezone.localtime(instrument.delivery_end)
    if start.time() == end.time() == time(0):
        return f"{start:%Y-%m-%d}"
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"


def capacity_totals(*, now: datetime | None = None) -> dict[str, int]:
    """SCU·h listed for delivery from today (China time) on, and how much of it is sold."""
    from marketplace.models import ListingPeriod

    today = china_midnight(china_today(now or timezone.now()))
    totals = ListingPeriod.objects.filter(period_start__gte=today).aggregate(listed=Sum("scu_h"), sold=Sum("sold_scu_h"))
    listed, sold = totals["listed"] or 0, totals["sold"] or 0
    return {"listed": listed, "sold": sold, "sold_pct": sold * 100 // listed if listed else 0}
