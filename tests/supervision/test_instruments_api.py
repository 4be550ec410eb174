"""``/api/v1/supervision/`` for instruments: the lists, who may call what, bad input, repeated
requests, opening an auction early and the price band reaching the engine."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exchange.invariants import invariants_check
from exchange.models import Instrument, Order, Trade
from marketplace.periods import china_today
from supervision.models import SupervisionAction
from tests.conftest import token_client
from tests.exchange.conftest import drain, fee_tier, funded_buyer, list_capacity, make_instrument, runner  # noqa: F401
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
BASE = "/api/v1/supervision"


@pytest.fixture
def supervise(regulator):
    return token_client(regulator, scopes=("read", "supervise"))


@pytest.fixture
def market(fee_tier):
    """Four instruments: AI24 in NX and GBA the day after tomorrow, AI80 in NX then and a day later."""
    return [make_instrument(class_code="AI24", hub_code="NX"), make_instrument(class_code="AI24", hub_code="GBA"),
            make_instrument(class_code="AI80", hub_code="NX"), make_instrument(class_code="AI80", hub_code="NX", days_ahead=3)]


def _bid(instrument, price="19.00", qty=5):
    return {"instrument": instrument.code, "side": "buy", "price": price, "qty": qty}


# --- lists -----------------------------------------------------------------------------------


def test_lists_of_classes_hubs_and_instruments_with_state_band_prices_and_open_orders(market, supervise,
                                                                                      funded_buyer):
    nx24, gba24, nx80, nx80_later = market
    buyer = token_client(funded_buyer)
    for price in ("19.00", "18.00"):
        assert buyer.post("/api/v1/orders/", _bid(nx24, price), format="json").status_code == 201
    Instrument.objects.filter(pk=gba24.pk).update(state=Instrument.State.HALTED, last_price_fen=2050)

    classes = {c["code"]: c for c in supervise.get(f"{BASE}/classes/").data["results"]}
    assert (classes["AI24"]["instruments_trading"], classes["AI24"]["instruments_halted"]) == (1, 1)
    assert (classes["AI80"]["instruments_trading"], classes["AI80"]["instruments_halted"]) == (2, 0)
    hubs = {h["code"]: h for h in supervise.get(f"{BASE}/hubs/").data["results"]}
    assert (hubs["NX"]["instruments_trading"], hubs["GBA"]["instruments_halted"]) == (3, 1)

    rows = {r["code"]: r for r in supervise.get(f"{BASE}/instruments/").data["results"]}
    assert set(rows) == {i.code for i in market}
    assert rows[nx24.code]["open_orders"] == 2 and rows[nx80.code]["open_orders"] == 0
    assert {k: rows[gba24.code][k] for k in ("state", "band_bps", "reference_price", "last_price")} == {
        "state": "halted", "band_bps": 1000, "reference_price": "20.00", "last_price": "20.50"}

    def codes(query):
        response = supervise.get(f"{BASE}/instruments/?{query}")
        assert response.status_code == 200, response.data
        return {r["code"] for r in response.data["results"]}

    assert codes("compute_class=AI80") == {nx80.code, nx80_later.code}
    assert codes("hub=GBA") == {gba24.code}
    assert codes("state=halted") == {gba24.code}
    later = (china_today(timezone.now()) + timedelta(days=3)).isoformat()
    assert codes(f"day={later}") == {nx80_later.code}
    assert codes("compute_class=AI80&hub=NX&state=continuous") == {nx80.code, nx80_later.code}
    Instrument.objects.filter(pk=nx80_later.pk).update(state=Instrument.State.CLOSED)
    assert nx80_later.code not in codes("") and nx80_later.code in codes("state=all")
    assert codes("state=closed") == {nx80_later.code}

    # Paged by delivery: one at a time reaches every instrument once.
    seen, url = [], f"{BASE}/instruments/?state=all&page_size=1"
    while url:
        page = supervise.get(url).data
        seen += [r["code"] for r in page["results"]]
        url = page["next"]
    assert sorted(seen) == sorted(i.code for i in market) and len(seen) == 4

    detail = supervise.get(f"{BASE}/instruments/{nx24.code}/").data
    assert detail["open_orders"] == 2 and detail["actions"] == []


def test_the_instrument_list_costs_the_same_queries_for_more_instruments(market, supervise):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert supervise.get(f"{BASE}/instruments/").status_code == 200
        return len(queries)

    count()  # the token's first use is recorded once
    few = count()
    assert few <= 3
    for days in (4, 5, 6, 7):
        make_instrument(class_code="CPU", hub_code="NX", days_ahead=days)
    assert count() == few


# --- who may call ----------------------------------------------------------------------------


@pytest.fixture
def callers(buyer, provider, regulator):
    operator = MembershipFactory(organisation__kind="operator", role="viewer")
    return {"buyer": token_client(buyer), "provider": token_client(provider, scopes=("read", "trade", "provide")),
            "operator": token_client(operator, scopes=("read",)), "reader": token_client(regulator, scopes=("read",))}


def test_only_the_regulator_reads_and_only_with_supervise_acts(market, callers, supervise, api):
    code = market[0].code
    reads = [f"{BASE}/classes/", f"{BASE}/hubs/", f"{BASE}/instruments/", f"{BASE}/instruments/{code}/"]
    writes = [f"{BASE}/instruments/{code}/halt/", f"{BASE}/instruments/{code}/resume/", f"{BASE}/instruments/{code}/open/",
              f"{BASE}/instruments/{code}/band/", f"{BASE}/classes/AI24/halt/", f"{BASE}/classes/AI24/resume/",
              f"{BASE}/hubs/NX/halt/", f"{BASE}/hubs/NX/resume/", f"{BASE}/market/halt/", f"{BASE}/market/resume/"]
    body = {"reason": "Because", "orders": "cancel", "band_bps": 500}
    for url in reads:
        assert api.get(url).status_code == 401, url
        for name in ("buyer", "provider", "operator"):
            response = callers[name].get(url)
            assert (response.status_code, response.data["code"]) == (403, "not_regulator"), (url, name)
        assert callers["reader"].get(url).status_code == 200, url
    for url in writes:
        assert api.post(url, body, format="json").status_code == 401, url
        for name in ("buyer", "provider", "operator", "reader"):
            response = callers[name].post(url, body, format="json")
            assert response.status_code == 403, (url, name)
            assert response.data["code"] == "scope_missing", (url, name)
    assert not SupervisionAction.objects.exists()
    assert set(Instrument.objects.values_list("state", flat=True)) == {"continuous"}


def test_a_supervisor_of_another_kind_of_organisation_is_refused(market):
    """The supervise scope comes with the regulator role; the role outside a regulator organisation is not enough."""
    stray = MembershipFactory(organisation__kind="buyer", role="regulator")
    response = token_client(stray, scopes=("read", "supervise")).post(
        f"{BASE}/market/halt/", {"reason": "x"}, format="json")
    assert (response.status_code, response.data["code"]) == (403, "not_regulator")


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("url, body, status, code, field", [
    ("instruments/{code}/halt/", {}, 400, "invalid", "reason"),
    ("instruments/{code}/halt/", {"reason": "   "}, 400, "invalid", "reason"),
    ("instruments/{code}/halt/", {"reason": "x" * 1001}, 400, "invalid", "reason"),
    ("instruments/{code}/halt/", {"reason": "x", "orders": "maybe"}, 400, "invalid", "orders"),
    ("instruments/{code}/halt/", {"reason": None}, 400, "invalid", "reason"),
    ("instruments/{code}/halt/", ["reason"], 400, "invalid", None),
    ("instruments/{code}/band/", {"reason": "x", "band_bps": 0}, 400, "invalid", "band_bps"),
    ("instruments/{code}/band/", {"reason": "x", "band_bps": 5001}, 400, "invalid", "band_bps"),
    ("instruments/{code}/band/", {"reason": "x", "band_bps": "wide"}, 400, "invalid", "band_bps"),
    ("instruments/{code}/band/", {"reason": "x", "band_bps": True}, 400, "invalid", "band_bps"),
    ("instruments/{code}/resume/", {"reason": "x", "auction_seconds": 1}, 400, "invalid", "auction_seconds"),
    ("instruments/NOPE.NX.2030-01-01/halt/", {"reason": "x"}, 404, "not_found", None),
    ("instruments/NOPE.NX.2030-01-01/band/", {"reason": "x", "band_bps": 100}, 404, "not_found", None),
    ("classes/NOPE/halt/", {"reason": "x"}, 404, "not_found", None),
    ("hubs/NOPE/resume/", {"reason": "x"}, 404, "not_found", None),
    ("instruments/{code}/resume/", {"reason": "x"}, 409, "not_halted", None),
    ("instruments/{code}/open/", {"reason": "x"}, 409, "wrong_state", None),
    ("market/resume/", {"reason": "x"}, 409, "not_halted", None),
])
def test_bad_input_is_refused_with_a_code_and_changes_nothing(market, supervise, url, body, status, code, field):
    response = supervise.post(f"{BASE}/{url.format(code=market[0].code)}", body, format="json")
    assert (response.status_code, response.data["code"]) == (status, code), response.data
    if field:
        assert field in response.data["fields"]
    assert not SupervisionAction.objects.exists()
    assert set(Instrument.objects.values_list("state", "band_bps")) == {("continuous", 1000)}


def test_bad_filters_are_refused(market, supervise):
    for query, field in (("state=sleeping", "state"), ("day=tomorrow", "day"), ("day=0001-01-01", "day"),
                         ("hub=" + "N" * 20, "hub")):
        response = supervise.get(f"{BASE}/instruments/?{query}")
        assert (response.status_code, response.data["code"]) == (400, "invalid"), query
        assert field in response.data["fields"], query
    assert supervise.get(f"{BASE}/instruments/NOPE/").status_code == 404


def test_closed_instruments_cannot_be_halted_or_banded(market, supervise):
    Instrument.objects.filter(pk=market[0].pk).update(state=Instrument.State.CLOSED)
    for action, body in (("halt", {"reason": "x"}), ("band", {"reason": "x", "band_bps": 100})):
        response = supervise.post(f"{BASE}/instruments/{market[0].code}/{action}/", body, format="json")
        assert (response.status_code, response.data["code"]) == (409, "wrong_state"), action


def test_a_repeated_idempotency_key_gives_one_action(market, supervise):
    url, body = f"{BASE}/classes/AI80/halt/", {"reason": "Once", "orders": "keep"}
    first = supervise.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="halt-ai80")
    again = supervise.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="halt-ai80")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replay"] == "true" and again.data == first.data
    assert SupervisionAction.objects.count() == 1
    other = supervise.post(url, {**body, "reason": "Twice"}, format="json", HTTP_IDEMPOTENCY_KEY="halt-ai80")
    assert (other.status_code, other.data["code"]) == (409, "idempotency_key_reused")
    # Without a key, the same request is a new action: refused, everything is halted already.
    assert supervise.post(url, body, format="json").data["code"] == "already_halted"


# --- opening early and the band ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_opening_auction_uncrosses_when_the_regulator_opens_it(fee_tier, funded_buyer, provider, supervise, runner):
    instrument = make_instrument(state=Instrument.State.PRE_OPEN)
    Instrument.objects.filter(pk=instrument.pk).update(auction_ends_at=timezone.now() + timedelta(hours=1))
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    token_client(provider, scopes=("read", "trade", "provide")).post(
        "/api/v1/orders/", {**_bid(instrument, "20.00"), "side": "sell"}, format="json")
    token_client(funded_buyer).post("/api/v1/orders/", _bid(instrument, "20.00"), format="json")
    drain(runner)
    assert not Trade.objects.exists()

    response = supervise.post(f"{BASE}/instruments/{instrument.code}/open/", {"reason": "Enough interest"}, format="json")
    assert response.status_code == 200 and response.data["action"] == "open"
    drain(runner)
    assert Trade.objects.get().qty == 5
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.CONTINUOUS
    assert invariants_check() == []


@pytest.mark.django_db(transaction=True)
def test_a_narrower_band_reaches_the_engine_before_its_next_order(fee_tier, funded_buyer, provider, supervise, runner):
    """Reference 20.00: an ask at 20.50 rests inside ±10 %; once the band is ±1 %, a bid that
    crosses it would trade outside the band, so the book stops for a volatility auction instead."""
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    token_client(provider, scopes=("read", "trade", "provide")).post(
        "/api/v1/orders/", {**_bid(instrument, "20.50"), "side": "sell"}, format="json")
    drain(runner)
    response = supervise.post(f"{BASE}/instruments/{instrument.code}/band/", {"reason": "Thin market",
                                                                              "band_bps": 100}, format="json")
    assert response.status_code == 200 and response.data["instruments"][0]["band_bps"] == 100
    record = SupervisionAction.objects.get()
    assert (record.action, record.details["band_bps"]) == ("instrument.band", {"from": 1000, "to": 100})

    token_client(funded_buyer).post("/api/v1/orders/", _bid(instrument, "20.50"), format="json")
    drain(runner)
    assert not Trade.objects.exists()
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.AUCTION
    assert set(Order.objects.values_list("status", flat=True)) == {"open"}
    assert invariants_check() == []
