"""The market overview (the home page and /markets/): instruments that trade come first, with
their last 24 h (volume, change, sparkline); capacity listed and sold; empty states; pages;
and a fixed number of queries however many rows a page shows."""

from datetime import timedelta
from itertools import count

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exchange.models import Instrument, Trade
from exchange.selectors_overview import market_rows, overview_instruments, sparkline_points
from tests.exchange.conftest import list_capacity, make_instrument

pytestmark = pytest.mark.django_db

_seq = count(1)


def trade(instrument, price_fen: int, qty: int, *, hours_ago: float = 0, party=None) -> Trade:
    """A trade row as the engine writes it (its orders are not needed to read the market)."""
    made = Trade.objects.create(
        instrument=instrument, inbox_seq=next(_seq), match_index=0, price_fen=price_fen, qty=qty, buy_order_id=1,
        sell_order_id=2, buyer_id=party.id, seller_id=party.id, aggressor="buy", buyer_fee_fen=0, seller_fee_fen=0)
    Trade.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(hours=hours_ago))
    Instrument.objects.filter(pk=instrument.pk).update(last_price_fen=price_fen)
    return made


@pytest.fixture
def four(buyer):
    """Four instruments of one day: busy (two trades today), quiet (traded two days ago,
    resting bid), quoted (an ask, never traded), empty."""
    instruments = {name: make_instrument(class_code=code) for name, code in
                   (("empty", "AI24"), ("quoted", "AI80"), ("quiet", "CPU"), ("busy", "HPC64"))}
    trade(instruments["quiet"], 1900, 5, hours_ago=48, party=buyer.organisation)
    Instrument.objects.filter(pk=instruments["quiet"].pk).update(best_bid_fen=1890)
    Instrument.objects.filter(pk=instruments["quoted"].pk).update(best_ask_fen=2100)
    trade(instruments["busy"], 2000, 10, hours_ago=30, party=buyer.organisation)
    trade(instruments["busy"], 2050, 4, hours_ago=5, party=buyer.organisation)
    trade(instruments["busy"], 2100, 6, hours_ago=1, party=buyer.organisation)
    return {name: Instrument.objects.get(pk=i.pk) for name, i in instruments.items()}


def test_instruments_that_trade_come_first_then_quoted_then_ever_traded_then_by_delivery(four):
    codes = [i.code for i in overview_instruments()]
    assert codes == [four[name].code for name in ("busy", "quiet", "quoted", "empty")]
    # Volume decides between two that trade.
    trade(four["empty"], 1500, 50, hours_ago=2, party=Trade.objects.first().buyer)
    assert [i.code for i in overview_instruments()][:2] == [four["empty"].code, four["busy"].code]


def test_a_row_has_its_24h_volume_change_and_sparkline(four):
    rows = {row.instrument.code: row for row in market_rows(overview_instruments())}
    busy = rows[four["busy"].code]
    # 24 h ago the price was 20.00 (the trade 30 h ago); since then 4 + 6 SCU·h at 20.50 and 21.00.
    assert busy.volume_24h == 10 and busy.prices == [2000, 2050, 2100]
    assert (busy.change, busy.change_pct, busy.direction) == ("+1.00", "+5.0 %", "up")
    assert busy.sparkline == "0.0,15.0 30.0,8.0 60.0,1.0"
    quiet = rows[four["quiet"].code]
    assert quiet.volume_24h == 0 and quiet.prices == [1900] and (quiet.change, quiet.direction) == ("0.00", "")
    empty = rows[four["empty"].code]
    assert (empty.volume_24h, empty.prices, empty.change, empty.change_pct, empty.sparkline) == (0, [], "—", "", "")


def test_without_a_trade_before_the_window_the_change_is_from_its_first_trade(buyer):
    instrument = make_instrument()
    trade(instrument, 1000, 1, hours_ago=3, party=buyer.organisation)
    trade(instrument, 950, 1, hours_ago=2.5, party=buyer.organisation)
    trade(instrument, 990, 1, hours_ago=0.2, party=buyer.organisation)
    (row,) = market_rows(overview_instruments())
    # The first hour's first trade, that hour's close, the last hour's close.
    assert row.prices[0] == 1000 and row.prices[-1] == 990
    assert (row.change, row.change_pct, row.direction) == ("-0.10", "-1.0 %", "down")


def test_sparkline_points():
    assert sparkline_points([]) == ""
    assert sparkline_points([500]) == "0.0,8.0 60.0,8.0"
    assert sparkline_points([500, 500, 500]) == "0.0,8.0 30.0,8.0 60.0,8.0"
    assert sparkline_points([100, 300, 200]) == "0.0,15.0 30.0,1.0 60.0,8.0"


def test_the_markets_page_shows_the_busy_first_and_live_fields(client, four):
    html = client.get("/markets/").content.decode()
    positions = [html.index(f'data-instrument="{four[name].code}"') for name in ("busy", "quiet", "quoted", "empty")]
    assert positions == sorted(positions)
    row = html[positions[0]:positions[1]]
    assert 'data-base-fen="2000"' in row and "+1.00" in row and "+5.0 %" in row and "<polyline" in row
    assert 'data-field="volume">10<' in row and 'data-field="last">21.00<' in row
    assert "<polyline" not in html[positions[3]:]


def test_closed_instruments_are_left_out_unless_asked_for(client, four):
    Instrument.objects.filter(pk=four["busy"].pk).update(state=Instrument.State.CLOSED)
    assert four["busy"].code not in client.get("/markets/").content.decode()
    closed = client.get("/markets/?state=closed").content.decode()
    assert four["busy"].code in closed and four["empty"].code not in closed


def test_empty_states(client, catalogue):
    assert Instrument.objects.count() == 0
    home = client.get("/")
    assert home.status_code == 200 and "No instruments are open for trading yet" in home.content.decode()
    assert 'id="markets"' not in home.content.decode()
    page = client.get("/markets/").content.decode()
    assert "No instruments match" in page and 'id="markets"' not in page
    assert "0 SCU·h" in page


def test_capacity_listed_and_sold(client, provider, buyer):
    instrument = make_instrument()
    period = list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=400)
    period.sold_scu_h = 100
    period.save(update_fields=["sold_scu_h"])
    html = client.get("/").content.decode()
    totals = html[html.index('id="capacity-totals"'):]
    assert "400 SCU·h" in totals and "100 SCU·h" in totals and "(25 %)" in totals


def test_the_home_page_shows_the_busiest_few(client, four):
    html = client.get("/").content.decode()
    assert html.index(four["busy"].code) < html.index(four["quoted"].code)
    assert 'href="/markets/"' in html


def test_pages_keep_the_filters(client, buyer):
    from exchange import views

    for days in range(1, views.MARKETS_PER_PAGE + 3):
        make_instrument(days_ahead=days, class_code="AI80")
    first = client.get("/markets/?class=AI80&state=continuous").content.decode()
    assert "Page 1 of 2" in first and 'href="?class=AI80&amp;state=continuous&amp;page=2"' in first
    second = client.get("/markets/?class=AI80&state=continuous&page=2").content.decode()
    assert second.count("<tr data-instrument=") == 2
    assert 'href="?class=AI80&amp;state=continuous&amp;page=1"' in second


# The home page: instruments, their prices, the totals; /markets/ also counts its pages and
# lists the classes and hubs of its filters.
@pytest.mark.parametrize(("url", "expected"), [("/", 3), ("/markets/", 6)])
def test_the_overview_runs_a_fixed_number_of_queries(client, buyer, url, expected, settings):
    settings.MARKET_OVERVIEW_CACHE_SECONDS = 0  # every answer rendered afresh

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    first = make_instrument(days_ahead=1)
    trade(first, 2000, 3, party=buyer.organisation)
    few = queries()
    for days in range(2, 14):
        instrument = make_instrument(days_ahead=days)
        trade(instrument, 2000 + days, 1, hours_ago=days, party=buyer.organisation)
        trade(instrument, 2100, 2, party=buyer.organisation)
    assert (few, queries()) == (expected, expected)


def test_the_overview_is_rendered_once_per_window_per_language_and_page(client, four, buyer, settings):
    """Within MARKET_OVERVIEW_CACHE_SECONDS the table is not read again (no query of trades or
    instruments); another language or filter is its own; with 0 every answer is fresh."""
    settings.MARKET_OVERVIEW_CACHE_SECONDS = 60

    def volume(html: str) -> str:
        row = html[html.index(f'data-instrument="{four["busy"].code}"'):]
        return row[row.index('data-field="volume">') + 20:row.index("</td>", row.index('data-field="volume">'))]

    assert volume(client.get("/markets/").content.decode()) == "10"
    trade(four["busy"], 2100, 5, party=buyer.organisation)
    with CaptureQueriesContext(connection) as captured:
        again = client.get("/markets/").content.decode()
    assert volume(again) == "10"
    assert not [q["sql"] for q in captured if "exchange_trade" in q["sql"] or "exchange_instrument" in q["sql"]]
    assert volume(client.get("/markets/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()) == "15"
    assert volume(client.get(f"/markets/?class={four['busy'].compute_class.code}").content.decode()) == "15"
    assert volume(client.get("/markets/?page=abc").content.decode()) == "15"  # not a page number: not kept
    for _ in range(2):  # a filter longer than any code: read afresh each time, never kept
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/markets/?hub=" + "X" * 40).status_code == 200
        assert [q for q in captured if "exchange_instrument" in q["sql"]]
    settings.MARKET_OVERVIEW_CACHE_SECONDS = 0
    assert volume(client.get("/markets/").content.decode()) == "15"


def test_the_overview_renders_without_its_cache(client, four, settings, caplog):
    """A cache that cannot be reached (a Redis port nothing listens on) costs the shortcut, not the
    page: the overview, the filters and the terminal's 24 h figures are read afresh."""
    from tests.processes import free_port

    settings.MARKET_OVERVIEW_CACHE_SECONDS = 60
    settings.CACHES = {"default": {"BACKEND": "exchange.cache.SharedPoolRedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
                                   "OPTIONS": {"socket_connect_timeout": 1}}}
    for url in ("/", "/markets/", f"/markets/{four['busy'].code}/"):
        answer = client.get(url)
        assert answer.status_code == 200 and f'data-instrument="{four["busy"].code}"' in answer.content.decode()
    assert "the market overview's cache could not be read" in caplog.text


def test_the_overview_speaks_chinese(client, four):
    html = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "当前行情" in html and "24 小时涨跌" in html and "今日起挂牌的算力" in html


def test_the_delivery_column_reads_a_day_or_a_window_in_china_time():
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from exchange.models import Instrument
    from exchange.selectors_overview import delivery_label

    china = ZoneInfo("Asia/Shanghai")
    day = Instrument(delivery_start=datetime(2026, 12, 10, tzinfo=china), delivery_end=datetime(2026, 12, 11, tzinfo=china))
    short = Instrument(delivery_start=datetime(2026, 12, 10, 14, 5, tzinfo=china),
                       delivery_end=datetime(2026, 12, 10, 14, 5, tzinfo=china) + timedelta(minutes=5))
    assert delivery_label(day) == "2026-12-10"
    assert delivery_label(short) == "2026-12-10 14:05–14:10"


def test_the_filters_classes_and_hubs_are_read_once_per_window_per_language(client, four, settings):
    """/markets/'s class and hub choices are kept with the overview: within the window no query
    of classes or hubs; the hub names follow the page's language."""
    settings.MARKET_OVERVIEW_CACHE_SECONDS = 60
    from marketplace.models import Hub

    hub = Hub.objects.get(code="NX")
    first = client.get("/markets/").content.decode()
    assert f'<option value="NX">NX · {hub.name_en}</option>' in first
    assert f'<option value="{four["busy"].compute_class.code}">' in first
    with CaptureQueriesContext(connection) as captured:
        client.get("/markets/")
    assert not [q["sql"] for q in captured if "marketplace_hub" in q["sql"] or "marketplace_computeclass" in q["sql"]]
    chinese = client.get("/markets/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f'<option value="NX">NX · {hub.name_zh}</option>' in chinese


def test_the_terminal_keeps_its_24h_figures_for_the_window_and_its_state_never(client, four, buyer, settings):
    """The terminal's 24 h volume and change are read at most once per window per instrument;
    its state, last price, bid and ask come from the instrument row on every answer."""
    settings.MARKET_OVERVIEW_CACHE_SECONDS = 60
    busy = four["busy"]

    def field(html: str, label: str) -> str:
        at = html.index(f"{label}: <strong")
        return html[html.index(">", at + len(label) + 9) + 1:html.index("</strong>", at)]

    page = client.get(f"/markets/{busy.code}/").content.decode()
    assert (field(page, "24 h volume"), field(page, "24 h change"), field(page, "Last")) == ("10", "1.00", "21.00")
    trade(busy, 2200, 5, party=buyer.organisation)  # the last price moves to 22.00
    Instrument.objects.filter(pk=busy.pk).update(state=Instrument.State.HALTED)
    with CaptureQueriesContext(connection) as captured:
        page = client.get(f"/markets/{busy.code}/").content.decode()
    assert not [q["sql"] for q in captured if "exchange_trade" in q["sql"]]
    # The volume is the window's; the change is measured from the same base to the current price.
    assert (field(page, "24 h volume"), field(page, "24 h change"), field(page, "Last")) == ("10", "2.00", "22.00")
    assert 'data-state="halted"' in page
    settings.MARKET_OVERVIEW_CACHE_SECONDS = 0
    assert field(client.get(f"/markets/{busy.code}/").content.decode(), "24 h volume") == "15"


@pytest.mark.django_db(transaction=True)
def test_pages_under_asgi_share_one_redis_connection_pool(four, settings):
    """Under ASGI every request is a context of its own, and Django builds a cache backend per
    context: the pages' cache reads must still share one pool, not open a connection each."""
    import asyncio
    import uuid

    from exchange import cache as shared
    from tests.asgi import asgi_call

    settings.MARKET_OVERVIEW_CACHE_SECONDS = 60
    settings.CACHES = {"default": {"BACKEND": "exchange.cache.SharedPoolRedisCache", "LOCATION": settings.REDIS_URL,
                                   "KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}"}}

    async def readers() -> list[int]:
        return [(await asgi_call("GET", path))[0] for _ in range(10)
                for path in ("/markets/", f"/markets/{four['busy'].code}/")]

    assert set(asyncio.run(readers())) == {200}
    pools = [pool for (server, _), pool in shared._pools.items() if server == settings.REDIS_URL]
    # One pool for the twenty answers, and no more connections than were in use at once.
    assert len(pools) == 1 and pools[0]._created_connections <= 2
