"""The statistics API and page: regulators only, bad filters refused with a code, the CSVs the
same rows as the JSON, and a page whose queries do not grow with the market."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace.periods import china_today
from supervision.statistics import STATISTICS
from tests.conftest import token_client
from tests.exchange.conftest import ensure_catalogue, fee_tier  # noqa: F401 (a fixture)
from tests.factories import MembershipFactory
from tests.settlement.conftest import sla_schedule  # noqa: F401 (a fixture)
from tests.supervision.statistics_market import statistics_market_make

pytestmark = pytest.mark.django_db

BASE = "/api/v1/supervision/statistics/"
URLS = [f"{BASE}{name}/" for name in STATISTICS] + [f"{BASE}{name}.csv" for name in STATISTICS]
PAGE = "/supervision/statistics/"


@pytest.fixture
def market(fee_tier, sla_schedule, regulator):  # noqa: F811
    return statistics_market_make(regulator)


@pytest.fixture
def operator():
    return MembershipFactory(organisation__kind="operator", role="viewer")


def _today():
    return china_today(timezone.now())


def _range(market) -> dict:
    return {"from": min(market.delivery_day, _today()).isoformat(), "to": _today().isoformat()}


def _csv(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_only_regulators_read_the_statistics(client, regulator, buyer, provider, operator, admin_user):
    for url in URLS:
        assert APIClient().get(url).status_code == 401, url
        for member in (buyer, provider, operator):
            response = token_client(member, ("read",)).get(url)
            assert response.status_code == 403 and response.json()["code"] == "not_regulator", (url, member)
        assert token_client(regulator, ("read",)).get(url).status_code == 200, url
    # A regulator's token without `read` reads nothing.
    assert token_client(regulator, ("supervise",)).get(URLS[0]).json()["code"] == "scope_missing"
    # Refusals come before filters: nobody else learns whether a filter is valid.
    assert token_client(buyer, ("read",)).get(URLS[0], {"from": "nonsense"}).status_code == 403

    assert client.get(PAGE).status_code == 302  # sign in first
    for member in (buyer, provider, operator):
        client.force_login(member.user)
        response = client.get(PAGE)
        assert response.status_code == 403 and b"for the regulator" in response.content
        assert client.get(URLS[0]).status_code == 403  # the API with the page's session
    client.force_login(admin_user)  # a superuser without a regulator membership is not a regulator
    assert client.get(PAGE).status_code == 403
    client.force_login(regulator.user)
    assert client.get(PAGE).status_code == 200
    assert client.get(URLS[0]).status_code == 200  # the page's CSV links use the session


@pytest.mark.parametrize("params, code, field", [
    ({"from": "2026-13-01"}, "invalid_filter", "from"),
    ({"to": "yesterday"}, "invalid_filter", "to"),
    ({"from": "1999-12-31"}, "invalid_filter", "from"),
    ({"from": "2026-05-10", "to": "2026-05-09"}, "invalid_filter", "to"),
    ({"from": "2025-01-01", "to": "2026-05-09"}, "range_too_long", "from"),
    ({"interval": "week"}, "invalid_filter", "interval"),
    ({"from": "2026-01-01", "to": "2026-02-15", "interval": "hour"}, "range_too_long", "interval"),
    ({"compute_class": "NOPE"}, "invalid_filter", "compute_class"),
    ({"compute_class": "X" * 500}, "invalid_filter", "compute_class"),
    ({"hub": "ATLANTIS"}, "invalid_filter", "hub"),
])
def test_bad_filters_are_refused_with_a_code(client, regulator, params, code, field):
    api = token_client(regulator, ("read",))
    for url in (URLS[0], URLS[len(STATISTICS)]):  # JSON and CSV alike
        response = api.get(url, params)
        assert response.status_code == 400 and response["Content-Type"] == "application/json", url
        body = response.json()
        assert body["code"] == code and field in body["fields"] and body["detail"]
    client.force_login(regulator.user)
    page = client.get(PAGE, params)
    assert page.status_code == 400 and f'data-code="{code}"'.encode() in page.content


def test_default_range_is_the_last_30_days_in_china_time(regulator):
    body = token_client(regulator, ("read",)).get(f"{BASE}volume/").json()
    today = _today()
    assert body["filter"] == {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat(),
                              "compute_class": None, "hub": None, "interval": "day"}
    assert body["rows"] == []
    short = token_client(regulator, ("read",)).get(f"{BASE}volume/", {"from": today.isoformat()}).json()
    assert short["filter"]["interval"] == "hour"
    later = (today + timedelta(days=3)).isoformat()  # a range that starts after today is that one day
    assert token_client(regulator, ("read",)).get(f"{BASE}utilisation/", {"from": later}).json()["filter"] == {
        "from": later, "to": later, "compute_class": None, "hub": None, "interval": "hour"}


def test_each_csv_holds_the_rows_the_api_answers(market):
    api = token_client(market.members["regulator"], ("read",))
    for name, statistic in STATISTICS.items():
        for params in (_range(market), {**_range(market), "hub": "NX"}, {"from": _today().isoformat()}):
            body = api.get(f"{BASE}{name}/", params).json()
            response = api.get(f"{BASE}{name}.csv", params)
            assert response.status_code == 200 and response.streaming
            assert response["Content-Type"] == "text/csv; charset=utf-8"
            assert response["Content-Disposition"] == (
                f'attachment; filename="{name}-{body["filter"]["from"]}-{body["filter"]["to"]}.csv"')
            header, *rows = _csv(response)
            assert header == list(statistic.columns)
            assert rows == [["" if row[c] is None else str(row[c]) for c in statistic.columns] for row in body["rows"]]
        assert body["rows"] or name in ("utilisation", "green-share", "providers")  # today's trades, by the hour
    # The market's figures did reach the CSVs (not only empty files agreeing with empty lists).
    providers = _csv(api.get(f"{BASE}providers.csv", _range(market)))
    assert sorted(row[4] for row in providers[1:]) == ["50.00", "95.38"]


def test_the_page_charts_and_tabulates_every_statistic(client, market):
    client.force_login(market.members["regulator"].user)
    response = client.get(PAGE, _range(market))
    assert response.status_code == 200
    html = response.content.decode()
    assert "vendor/uplot/uPlot.iife.min.js" in html and "supervision/statistics.js" in html
    for chart in ("volume", "value", "price_index", "utilisation", "green_share", "providers"):
        assert f'data-chart="{chart}"' in html
    for name in STATISTICS:
        assert f"{BASE}{name}.csv?" in html
    # The tables hold the figures (the market's hand-worked ones: tests/supervision/test_statistics.py).
    for figure in ("4075.00", "20.38", "12.00", "66.82", "95.38", "33.33", market.members["P1"].organisation.name):
        assert figure in html, figure
    assert 'id="statistics-data"' in html and 'id="statistics-text"' in html


def test_the_page_in_chinese(client, market):
    client.force_login(market.members["regulator"].user)
    client.cookies["django_language"] = "zh-hans"
    html = client.get(PAGE, _range(market), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "市场统计" in html and "下载 CSV" in html and "算力利用率" in html


def test_the_page_reads_a_fixed_number_of_queries(client, regulator, fee_tier, sla_schedule):  # noqa: F811
    ensure_catalogue()
    client.force_login(regulator.user)
    params = {"from": (_today() - timedelta(days=3)).isoformat(), "to": _today().isoformat(), "compute_class": "AI80"}
    client.get(PAGE, params)  # warm: the session, content types

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(PAGE, params).status_code == 200
        return len(queries)

    empty = count()
    statistics_market_make(regulator)
    # Session, user, membership; the class filter's check; one query per statistic; the classes and
    # hubs of the form; the navigation's membership — however many trades, listings and settlements.
    assert count() == empty == 12
