"""Market statistics for the console: what traded, at what price, how much of the listed
capacity sold, how green it was, and how well each provider delivered.

Two calendars, both China time: **trading** figures (volume, value, the price index) fall on
the day (or hour) a trade executed; **capacity** figures (utilisation, green share,
delivery and dispute rates) on the day its delivery starts, so what was listed, sold and
delivered for one day sit side by side.

Every figure is exact: sums are integers (SCU·h, fen), shares are integer ratios rounded
half up to hundredths, and leave here as decimal strings, never floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection
from django.utils.translation import gettext as _

from exchange.errors import AppError
from exchange.money import cny
from exchange.selectors import INDEX_METHOD
from marketplace.models import ComputeClass, Hub
from marketplace.periods import china_midnight

INTERVALS = ("day", "hour")
DEFAULT_DAYS = 30
MAX_DAYS = 366  # one row per class, hub and day: a year stays a few thousand rows
MAX_HOUR_DAYS = 31
AUTO_HOUR_DAYS = 2  # ranges this short are shown by the hour unless asked otherwise
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class StatisticsFilter:
    first_day: date
    last_day: date
    class_code: str | None = None
    hub_code: str | None = None
    interval: str = "day"

    @property
    def start(self) -> datetime:
        return china_midnight(self.first_day)

    @property
    def end(self) -> datetime:
        return china_midnight(self.last_day + timedelta(days=1))

    def as_dict(self) -> dict:
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat(),
                "compute_class": self.class_code, "hub": self.hub_code, "interval": self.interval}

    def query(self) -> dict[str, str]:
        """The filter as query parameters (for links to the CSV)."""
        return {key: value for key, value in self.as_dict().items() if value}


def _invalid(name: str, message: str, code: str = "invalid_filter") -> AppError:
    return AppError(code, message, fields={name: message})


def _day(params, name: str) -> date | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        if len(raw) != 10:
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise _invalid(name, _("“%(value)s” is not a date; use YYYY-MM-DD.") % {"value": raw[:20]}) from None
    if not EARLIEST <= day <= LATEST:
        raise _invalid(name, _("Choose a date between %(earliest)s and %(latest)s.") % {
            "earliest": EARLIEST, "latest": LATEST})
    return day


def _code(params, name: str, model, max_length: int) -> str | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    if len(raw) > max_length or not model.objects.filter(code=raw).exists():
        raise _invalid(name, _("There is no %(what)s “%(code)s”.") % {
            "what": _("compute class") if model is ComputeClass else _("hub"), "code": raw[:20]})
    return raw


def filter_from_params(params, *, today: date) -> StatisticsFilter:
    """The filter a query names: ``from`` and ``to`` (China days, both included; the last
    30 days by default), ``compute_class``, ``hub``, ``interval`` (``day`` or ``hour``; by the
    hour for ranges of two days or less). AppError 400 naming the field otherwise."""
    first, last = _day(params, "from"), _day(params, "to")
    if last is None:
        last = max(today, first) if first else today  # a range starting later than today is that day
    if first is None:
        first = max(last - timedelta(days=DEFAULT_DAYS - 1), EARLIEST)
    if last < first:
        raise _invalid("to", _("The range ends (%(to)s) before it starts (%(from)s).") % {"to": last, "from": first})
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise _invalid("from", _("Choose at most %(days)s days.") % {"days": MAX_DAYS}, code="range_too_long")
    interval = (params.get("interval") or "").strip() or ("hour" if days <= AUTO_HOUR_DAYS else "day")
    if interval not in INTERVALS:
        raise _invalid("interval", _("The interval is day or hour."))
    if interval == "hour" and days > MAX_HOUR_DAYS:
        raise _invalid("interval", _("Hourly figures cover at most %(days)s days.") % {"days": MAX_HOUR_DAYS},
                       code="range_too_long")
    return StatisticsFilter(first_day=first, last_day=last, interval=interval,
                            class_code=_code(params, "compute_class", ComputeClass, 12),
                            hub_code=_code(params, "hub", Hub, 8))


# --------------------------------------------------------------------------- arithmetic


def half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def hundredths(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def percent(part: int, whole: int) -> str | None:
    """``part`` of ``whole`` as a percentage with two decimals, half up; None of nothing."""
    return hundredths(half_up(part * 10000, whole)) if whole else None


def weighted_share(weighted: int, weight: int) -> str | None:
    """A share in hundredths of a per cent, weighted (Σ share × SCU·h), as a percentage."""
    return hundredths(half_up(weighted, weight)) if weight else None


# --------------------------------------------------------------------------- queries


def _rows(sql: str, f: StatisticsFilter, *, class_column: str = "c.code", hub_column: str = "h.code",
          **params) -> list[tuple]:
    conditions = []
    if f.class_code:
        conditions.append(f"{class_column} = %(class_code)s")
    if f.hub_code:
        conditions.append(f"{hub_column} = %(hub_code)s")
    extra = "".join(f" AND {condition}" for condition in conditions)
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("{filters}", extra), {
            "start": f.start, "end": f.end, "class_code": f.class_code, "hub_code": f.hub_code, **params})
        return cursor.fetchall()


TRADES_SQL = """
    SELECT date_trunc(%(unit)s, t.created_at AT TIME ZONE 'Asia/Shanghai') AS bucket, c.code, h.code,
           SUM(t.price_fen * t.qty), SUM(t.qty), COUNT(*)
    FROM exchange_trade t
    JOIN exchange_instrument i ON i.id = t.instrument_id
    JOIN marketplace_computeclass c ON c.id = i.compute_class_id
    JOIN marketplace_hub h ON h.id = i.hub_id
    WHERE t.created_at >= %(start)s AND t.created_at < %(end)s{filters}
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def _bucket(moment: datetime, interval: str) -> str:
    """A China-time bucket (a naive local timestamp from the query) as text."""
    return moment.date().isoformat() if interval == "day" else moment.strftime("%Y-%m-%dT%H:00+08:00")


def volume_rows(f: StatisticsFilter) -> list[dict]:
    """SCU·h traded, its value and the number of trades per class, hub and day (or hour)."""
    return [{"bucket": _bucket(bucket, f.interval), "compute_class": c, "hub": h, "volume_scu_h": int(volume),
             "value": cny(int(notional)), "trades": count}
            for bucket, c, h, notional, volume, count in _rows(TRADES_SQL, f, unit=f.interval)]


def price_index_rows(f: StatisticsFilter) -> list[dict]:
    """The daily price index (exchange.selectors.price_index's method, INDEX_METHOD) per
    class and hub: sum(price × qty) / sum(qty) of the day's trades, half up to 0.01 CNY."""
    return [{"day": bucket.date().isoformat(), "compute_class": c, "hub": h,
             "index": cny(half_up(int(notional), int(volume))), "volume_scu_h": int(volume), "trades": count}
            for bucket, c, h, notional, volume, count in _rows(TRADES_SQL, f, unit="day")]


UTILISATION_SQL = """
    SELECT (p.period_start AT TIME ZONE 'Asia/Shanghai')::date AS day, c.code, h.code,
           SUM(p.scu_h), SUM(p.sold_scu_h)
    FROM marketplace_listingperiod p
    JOIN marketplace_computeclass c ON c.id = p.compute_class_id
    JOIN marketplace_hub h ON h.id = p.hub_id
    WHERE p.period_start >= %(start)s AND p.period_start < %(end)s{filters}
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def utilisation_rows(f: StatisticsFilter) -> list[dict]:
    """Listed and sold SCU·h of the listing periods delivering on each day, and sold ÷ listed.
    A withdrawn listing's periods count what they had sold (marketplace.ListingPeriod)."""
    return [{"day": day.isoformat(), "compute_class": c, "hub": h, "listed_scu_h": int(listed),
             "sold_scu_h": int(sold), "utilisation": percent(int(sold), int(listed))}
            for day, c, h, listed, sold in _rows(UTILISATION_SQL, f)]


# Resold capacity is the same capacity sold again: only first sales (allocations without a
# source) count, and a first sale's settlement already counts what its resales delivered.
GREEN_SQL = """
    SELECT (i.delivery_start AT TIME ZONE 'Asia/Shanghai')::date AS day, c.code, h.code,
           SUM(a.scu_h), SUM(a.scu_h * (g.green_share * 100)::bigint),
           COALESCE(SUM(s.delivered_scu_h), 0), COALESCE(SUM(s.delivered_scu_h * (g.green_share * 100)::bigint), 0)
    FROM exchange_allocation a
    JOIN exchange_trade t ON t.id = a.trade_id
    JOIN exchange_instrument i ON i.id = t.instrument_id
    JOIN marketplace_computeclass c ON c.id = i.compute_class_id
    JOIN marketplace_hub h ON h.id = i.hub_id
    JOIN marketplace_listingperiod p ON p.id = a.listing_period_id
    JOIN marketplace_listing l ON l.id = p.listing_id
    JOIN marketplace_computeasset g ON g.id = l.asset_id
    LEFT JOIN settlement_settlement s ON s.allocation_id = a.id
    WHERE a.source_id IS NULL AND i.delivery_start >= %(start)s AND i.delivery_start < %(end)s{filters}
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def _green(sold: int, sold_weighted: int, delivered: int, delivered_weighted: int) -> dict:
    return {"sold_scu_h": sold, "sold_green_share": weighted_share(sold_weighted, sold),
            "delivered_scu_h": delivered, "delivered_green_share": weighted_share(delivered_weighted, delivered)}


def green_share(f: StatisticsFilter) -> tuple[list[dict], list[dict]]:
    """Green-power share (the assets' green_share, weighted by SCU·h) of the capacity sold for
    delivery on each day, and of what settlement found delivered of it: per class and hub,
    and per day over them all (summed before rounding)."""
    rows, days = [], {}
    for day, c, h, *figures in _rows(GREEN_SQL, f):
        figures = [int(n) for n in figures]
        rows.append({"day": day.isoformat(), "compute_class": c, "hub": h, **_green(*figures)})
        total = days.setdefault(day, [0, 0, 0, 0])
        for n, value in enumerate(figures):
            total[n] += value
    return rows, [{"day": day.isoformat(), **_green(*total)} for day, total in sorted(days.items())]


PROVIDERS_SQL = """
    SELECT o.id, o.name,
           COALESCE(SUM(s.scu_h) FILTER (WHERE a.source_id IS NULL), 0),
           COALESCE(SUM(s.delivered_scu_h) FILTER (WHERE a.source_id IS NULL), 0),
           COUNT(*),
           COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM settlement_dispute d WHERE d.allocation_id = a.id))
    FROM settlement_settlement s
    JOIN exchange_allocation a ON a.id = s.allocation_id
    JOIN exchange_trade t ON t.id = s.trade_id
    JOIN exchange_instrument i ON i.id = t.instrument_id
    JOIN marketplace_computeclass c ON c.id = i.compute_class_id
    JOIN marketplace_hub h ON h.id = i.hub_id
    JOIN marketplace_listingperiod p ON p.id = a.listing_period_id
    JOIN accounts_organisation o ON o.id = p.provider_id
    WHERE i.delivery_start >= %(start)s AND i.delivery_start < %(end)s{filters}
    GROUP BY o.id, o.name ORDER BY o.name, o.id
"""


def provider_rows(f: StatisticsFilter) -> list[dict]:
    """Per provider (the listing's, who delivers), over settled allocations delivering in the
    range: delivered ÷ allocated SCU·h of first sales (as for green share), and disputed ÷
    settled allocations (every allocation, resales too: each is delivered and may be disputed)."""
    return [{"provider_id": pk, "provider": name, "allocated_scu_h": int(allocated),
             "delivered_scu_h": int(delivered), "delivery_rate": percent(int(delivered), int(allocated)),
             "settled_allocations": settled, "disputed_allocations": disputed,
             "dispute_rate": percent(disputed, settled)}
            for pk, name, allocated, delivered, settled, disputed in _rows(PROVIDERS_SQL, f)]


# --------------------------------------------------------------------------- the statistics


@dataclass(frozen=True)
class Statistic:
    """One statistic of the console: its name in URLs, its CSV columns (its rows' keys) and
    what builds its figures (a dict with ``rows`` and perhaps more)."""

    name: str
    columns: tuple[str, ...]
    build: Callable[[StatisticsFilter], dict]


def _green_payload(f: StatisticsFilter) -> dict:
    rows, totals = green_share(f)
    return {"rows": rows, "totals": totals}


STATISTICS: dict[str, Statistic] = {s.name: s for s in (
    Statistic("volume", ("bucket", "compute_class", "hub", "volume_scu_h", "value", "trades"),
              lambda f: {"rows": volume_rows(f)}),
    Statistic("price-index", ("day", "compute_class", "hub", "index", "volume_scu_h", "trades"),
              lambda f: {"method": INDEX_METHOD, "rows": price_index_rows(f)}),
    Statistic("utilisation", ("day", "compute_class", "hub", "listed_scu_h", "sold_scu_h", "utilisation"),
              lambda f: {"rows": utilisation_rows(f)}),
    Statistic("green-share", ("day", "compute_class", "hub", "sold_scu_h", "sold_green_share", "delivered_scu_h",
                              "delivered_green_share"), _green_payload),
    Statistic("providers", ("provider_id", "provider", "allocated_scu_h", "delivered_scu_h", "delivery_rate",
                            "settled_allocations", "disputed_allocations", "dispute_rate"),
              lambda f: {"rows": provider_rows(f)}),
)}


def statistic_build(*, name: str, f: StatisticsFilter) -> dict:
    """One statistic's figures under ``f``, with the filter that chose them (one query)."""
    return {"filter": f.as_dict(), **STATISTICS[name].build(f)}


def statistic_csv_rows(*, name: str, f: StatisticsFilter) -> Iterator[list]:
    """The header, then one list of cells per row (None as an empty cell)."""
    columns = STATISTICS[name].columns
    yield list(columns)
    for row in STATISTICS[name].build(f)["rows"]:
        yield ["" if row[column] is None else row[column] for column in columns]
