"""The console's statistics from a small real market (tests/supervision/statistics_market.py)
match figures worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from exchange import selectors as exchange_selectors
from marketplace.periods import china_today
from supervision.statistics import (
    StatisticsFilter, filter_from_params, green_share, half_up, percent, price_index_rows, provider_rows,
    statistic_build, utilisation_rows, volume_rows, weighted_share,
)
from tests.exchange.conftest import fee_tier  # noqa: F401 (a fixture)
from tests.settlement.conftest import sla_schedule  # noqa: F401 (a fixture)
from tests.supervision.statistics_market import statistics_market_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(fee_tier, sla_schedule, regulator):  # noqa: F811
    return statistics_market_make(regulator)


def _today():
    return china_today(timezone.now())


def _around(market) -> StatisticsFilter:
    """Every day the market touched: its delivery day D and today (when it traded)."""
    return StatisticsFilter(first_day=min(market.delivery_day, _today()), last_day=_today())


def test_arithmetic_is_exact_and_half_up():
    assert half_up(5, 2) == 3 and half_up(7, 4) == 2 and half_up(2, 3) == 1 and half_up(1, 3) == 0
    assert percent(1, 3) == "33.33" and percent(2, 3) == "66.67" and percent(1, 8) == "12.50"
    assert percent(1, 20001) == "0.00" and percent(1, 20000) == "0.01"  # exactly 0.005 % rounds up
    assert percent(0, 0) is None and weighted_share(0, 0) is None
    assert weighted_share(1_192_500, 180) == "66.25"


def test_volume_and_value_by_class_hub_and_day(market):
    rows = volume_rows(_around(market))
    today = _today().isoformat()
    # NX: 100 × 20.00 + 50 × 21.00 + 30 × 19.50 + 20 × 22.00 (the resale trades too) = 4,075.00.
    assert rows == [
        {"bucket": today, "compute_class": "AI80", "hub": "NX", "volume_scu_h": 200, "value": "4075.00", "trades": 4},
        {"bucket": today, "compute_class": "AI80", "hub": "YRD", "volume_scu_h": 40, "value": "1000.00", "trades": 1},
    ]
    only_yrd = volume_rows(StatisticsFilter(first_day=_today() - timedelta(days=5), last_day=_today(), hub_code="YRD"))
    assert only_yrd == [rows[1]]
    assert volume_rows(StatisticsFilter(first_day=_today(), last_day=_today(), class_code="HPC64")) == []
    assert volume_rows(StatisticsFilter(first_day=_today() - timedelta(days=9), last_day=_today() - timedelta(days=1))) == []


def test_volume_by_hour_for_short_ranges(market):
    f = filter_from_params({"from": _today().isoformat()}, today=_today())
    assert f.interval == "hour"
    hours: dict[tuple, list] = {}
    for trade in market.trades.values():
        key = (timezone.localtime(trade.created_at).strftime("%Y-%m-%dT%H:00+08:00"), trade.instrument.hub.code)
        hours.setdefault(key, []).append(trade)
    expected = [{"bucket": bucket, "compute_class": "AI80", "hub": hub, "volume_scu_h": sum(t.qty for t in trades),
                 "value": f"{sum(t.qty * t.price_fen for t in trades) / 100:.2f}", "trades": len(trades)}
                for (bucket, hub), trades in sorted(hours.items())]
    assert volume_rows(f) == expected


def test_the_daily_price_index_is_the_public_one(market):
    rows = price_index_rows(_around(market))
    today = _today().isoformat()
    # NX: 407,500 fen / 200 SCU·h = 2,037.5 fen → 20.38 (half up); YRD: 25.00.
    assert rows == [
        {"day": today, "compute_class": "AI80", "hub": "NX", "index": "20.38", "volume_scu_h": 200, "trades": 4},
        {"day": today, "compute_class": "AI80", "hub": "YRD", "index": "25.00", "volume_scu_h": 40, "trades": 1},
    ]
    public = exchange_selectors.price_index()
    assert [(r["compute_class"], r["hub"], r["day"], r["vwap"], r["volume"]) for r in public] == [
        (r["compute_class"], r["hub"], r["day"], r["index"], r["volume_scu_h"]) for r in rows]


def test_utilisation_is_sold_over_listed_per_delivery_day(market):
    day = market.delivery_day.isoformat()
    # NX: 1,000 + 500 listed, 100 + 30 + 50 sold (the resale sells no listed capacity again).
    assert utilisation_rows(_around(market)) == [
        {"day": day, "compute_class": "AI80", "hub": "NX", "listed_scu_h": 1500, "sold_scu_h": 180,
         "utilisation": "12.00"},
        {"day": day, "compute_class": "AI80", "hub": "YRD", "listed_scu_h": 400, "sold_scu_h": 40,
         "utilisation": "10.00"},
    ]
    # By day of delivery, not of trade: a range of today alone holds none of it unless D is today.
    if market.delivery_day != _today():
        assert utilisation_rows(StatisticsFilter(first_day=_today(), last_day=_today())) == []


def test_green_share_of_sold_and_delivered(market):
    day = market.delivery_day.isoformat()
    rows, totals = green_share(_around(market))
    # NX sold: 130 SCU·h of P1 (80.00 %) and 50 of P2 (30.50 %): (130 × 8000 + 50 × 3050) / 180 = 6,625.
    # NX delivered: P1 80 + 20 (the resale) + 24 (adjusted) = 124, P2 45: (124 × 8000 + 45 × 3050) / 169
    # = 6,681.95… → 66.82. YRD: 40 sold at 30.50 %, nothing delivered.
    assert rows == [
        {"day": day, "compute_class": "AI80", "hub": "NX", "sold_scu_h": 180, "sold_green_share": "66.25",
         "delivered_scu_h": 169, "delivered_green_share": "66.82"},
        {"day": day, "compute_class": "AI80", "hub": "YRD", "sold_scu_h": 40, "sold_green_share": "30.50",
         "delivered_scu_h": 0, "delivered_green_share": None},
    ]
    # Over both hubs, from the exact sums: (1,192,500 + 40 × 3050) / 220 = 5,975.
    assert totals == [{"day": day, "sold_scu_h": 220, "sold_green_share": "59.75", "delivered_scu_h": 169,
                       "delivered_green_share": "66.82"}]


def test_delivery_and_dispute_rates_by_provider(market):
    p1, p2 = market.members["P1"].organisation, market.members["P2"].organisation
    rows = provider_rows(_around(market))
    expected = {
        # First sales 100 + 30 allocated, 100 (80 + the resale's 20) + 24 delivered; three allocations
        # settled (t1, t3 and the resale t5), one disputed.
        p1.id: {"provider_id": p1.id, "provider": p1.name, "allocated_scu_h": 130, "delivered_scu_h": 124,
                "delivery_rate": "95.38", "settled_allocations": 3, "disputed_allocations": 1,
                "dispute_rate": "33.33"},
        p2.id: {"provider_id": p2.id, "provider": p2.name, "allocated_scu_h": 90, "delivered_scu_h": 45,
                "delivery_rate": "50.00", "settled_allocations": 2, "disputed_allocations": 0,
                "dispute_rate": "0.00"},
    }
    assert rows == sorted(expected.values(), key=lambda r: (r["provider"], r["provider_id"]))
    assert provider_rows(StatisticsFilter(first_day=market.delivery_day, last_day=market.delivery_day,
                                          hub_code="YRD")) == [
        {**expected[p2.id], "allocated_scu_h": 40, "delivered_scu_h": 0, "delivery_rate": "0.00",
         "settled_allocations": 1}]


def test_a_statistic_names_the_filter_that_chose_it(market):
    f = _around(market)
    built = statistic_build(name="price-index", f=f)
    assert built["filter"] == {"from": f.first_day.isoformat(), "to": f.last_day.isoformat(), "compute_class": None,
                               "hub": None, "interval": "day"}
    assert built["method"] == exchange_selectors.INDEX_METHOD and len(built["rows"]) == 2
