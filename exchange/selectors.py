"""Reads for trading: instruments, market data, orders."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from exchange.models import FeeTier, Instrument, MemberTier, Order, Trade
from exchange.money import cny

CANDLE_INTERVALS = {"1m": "minute", "1h": "hour", "1d": "day"}
INDEX_METHOD = (
    "Volume-weighted average price of all trades executed on the China-time calendar day in instruments "
    "of the compute class and hub (any delivery window): sum(price × qty) / sum(qty), rounded half up to "
    "0.01 CNY. Days without trades have no value."
)


def instrument_list(*, state: str | None = None, class_code: str | None = None, hub_code: str | None = None) -> QuerySet[Instrument]:
    queryset = Instrument.objects.select_related("compute_class", "hub")
    if state:
        queryset = queryset.filter(state=state)
    if class_code:
        queryset = queryset.filter(compute_class__code=class_code)
    if hub_code:
        queryset = queryset.filter(hub__code=hub_code)
    return queryset


def trades_24h(*, instrument_id: int) -> tuple[int, int | None]:
    """An instrument's last 24 h: the SCU·h traded, and the price its change is measured from
    (the last trade before them, else their first)."""
    since = timezone.now() - timedelta(hours=24)
    trades = Trade.objects.filter(instrument_id=instrument_id)
    volume = trades.filter(created_at__gte=since).aggregate(v=Sum("qty"))["v"] or 0
    before = trades.filter(created_at__lt=since).order_by("-id").values_list("price_fen", flat=True).first()
    first_today = trades.filter(created_at__gte=since).order_by("id").values_list("price_fen", flat=True).first()
    return volume, before or first_today


def ticker(*, instrument: Instrument, day: tuple[int, int | None] | None = None) -> dict:
    """``day``: ``trades_24h`` of the instrument, when the caller has it already."""
    volume, base = day if day is not None else trades_24h(instrument_id=instrument.id)
    change = instrument.last_price_fen - base if instrument.last_price_fen is not None and base else None
    return {
        "last": cny(instrument.last_price_fen), "bid": cny(instrument.best_bid_fen), "ask": cny(instrument.best_ask_fen),
        "change_24h": cny(change), "volume_24h": volume, "seq": instrument.md_seq,
    }


def candles(*, instrument: Instrument, interval: str, limit: int = 500) -> list[dict]:
    unit = CANDLE_INTERVALS[interval]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT date_trunc('{unit}', created_at AT TIME ZONE 'Asia/Shanghai') AS bucket,
                       (array_agg(price_fen ORDER BY id))[1], MAX(price_fen), MIN(price_fen),
                       (array_agg(price_fen ORDER BY id DESC))[1], SUM(qty)
                FROM exchange_trade WHERE instrument_id = %s
                GROUP BY bucket ORDER BY bucket DESC LIMIT %s""",
            [instrument.id, limit],
        )
        rows = cursor.fetchall()
    return [{"start": bucket.isoformat() + "+08:00", "open": cny(o), "high": cny(h), "low": cny(lo), "close": cny(c),
             "volume": int(v)} for bucket, o, h, lo, c, v in reversed(rows)]


def price_index(*, class_code: str | None = None, hub_code: str | None = None, days: int = 90) -> list[dict]:
    conditions, params = ["t.created_at >= now() - make_interval(days => %s)"], [days]
    if class_code:
        conditions.append("c.code = %s")
        params.append(class_code)
    if hub_code:
        conditions.append("h.code = %s")
        params.append(hub_code)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT c.code, h.code, (t.created_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
                       SUM(t.price_fen * t.qty), SUM(t.qty), COUNT(*)
                FROM exchange_trade t JOIN exchange_instrument i ON i.id = t.instrument_id
                JOIN marketplace_computeclass c ON c.id = i.compute_class_id JOIN marketplace_hub h ON h.id = i.hub_id
                WHERE {' AND '.join(conditions)}
                GROUP BY c.code, h.code, day ORDER BY c.code, h.code, day""",
            params,
        )
        rows = cursor.fetchall()
    # Integer half-up division keeps the index exact: (2·n + d) // (2·d).
    return [{"compute_class": c, "hub": h, "day": day.isoformat(), "vwap": cny((2 * notional + volume) // (2 * volume)),
             "volume": int(volume), "trades": count} for c, h, day, notional, volume, count in rows]


def fee_bps(*, organisation_id: int) -> tuple[int, int]:
    """(maker, taker) basis points the organisation pays: its member tier's, else the default tier's."""
    tier = (MemberTier.objects.filter(organisation_id=organisation_id)
            .values_list("tier__maker_bps", "tier__taker_bps").first())
    return tier or FeeTier.objects.filter(is_default=True).values_list("maker_bps", "taker_bps").first() or (0, 0)


def order_list(*, organisation_id: int, status: str | None = None, instrument_code: str | None = None) -> QuerySet[Order]:
    queryset = Order.objects.filter(organisation_id=organisation_id).select_related("instrument")
    if status == "live":
        queryset = queryset.filter(status__in=Order.LIVE)
    elif status:
        queryset = queryset.filter(status=status)
    if instrument_code:
        queryset = queryset.filter(instrument__code=instrument_code)
    return queryset


def fill_list(*, organisation_id: int, instrument_code: str | None = None) -> QuerySet[Trade]:
    """The organisation's trades, as buyer or seller (each side on its own index)."""
    queryset = Trade.objects.filter(Q(buyer_id=organisation_id) | Q(seller_id=organisation_id))
    if instrument_code:
        queryset = queryset.filter(instrument__code=instrument_code)
    return queryset.select_related("instrument")
