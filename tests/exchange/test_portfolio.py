"""The portfolio page and the reads behind the terminal: who may see them, what they show,
their pages, and a fixed number of queries whatever they hold."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange import ledger
from exchange.models import Allocation, Order
from tests.conftest import token_client
from tests.exchange.conftest import drain, list_capacity, make_instrument
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def order(instrument, side, price, qty):
    return {"instrument": instrument.code, "side": side, "price": price, "qty": qty}


@pytest.fixture
def traded(instrument, funded_buyer, listed_provider, runner):
    """Two fills in ``instrument`` and one in a second instrument, and a bid left resting."""
    other = make_instrument(days_ahead=3)
    list_capacity(organisation=listed_provider.organisation, instrument=other, scu_h=100)
    seller = token_client(listed_provider, scopes=("read", "trade", "provide"))
    buyer = token_client(funded_buyer)
    for ins, qty in ((instrument, 10), (instrument, 5), (other, 7)):
        assert seller.post("/api/v1/orders/", order(ins, "sell", "20.00", qty), format="json").status_code == 201
        assert buyer.post("/api/v1/orders/", order(ins, "buy", "20.00", qty), format="json").status_code == 201
        drain(runner)
    assert buyer.post("/api/v1/orders/", order(instrument, "buy", "19.00", 3), format="json").status_code == 201
    drain(runner)
    return other


def test_fills_by_instrument(instrument, traded, funded_buyer):
    buyer = token_client(funded_buyer)
    every = buyer.get("/api/v1/fills/").data["results"]
    mine = buyer.get(f"/api/v1/fills/?instrument={instrument.code}").data["results"]
    assert [f["qty"] for f in every] == [7, 5, 10]
    assert [(f["instrument"], f["qty"], f["side"]) for f in mine] == [(instrument.code, 5, "buy"), (instrument.code, 10, "buy")]
    assert buyer.get("/api/v1/fills/?instrument=NO.SUCH.CODE").data["results"] == []


def test_fills_of_another_organisation_stay_hidden(instrument, traded):
    stranger = MembershipFactory()
    assert token_client(stranger).get(f"/api/v1/fills/?instrument={instrument.code}").data["results"] == []


def test_the_portfolio_shows_money_orders_fills_and_capacity(client, instrument, traded, funded_buyer):
    client.force_login(funded_buyer.user)
    page = client.get("/portfolio/")
    assert page.status_code == 200
    html = page.content.decode()
    resting = Order.objects.get(organisation=funded_buyer.organisation, price_fen=1900)
    assert f'data-order="{resting.id}"' in html
    for allocation in Allocation.objects.filter(holder=funded_buyer.organisation):
        assert f'data-allocation="{allocation.id}"' in html
    assert html.count("data-fill=") == 3
    balances = ledger.balances(organisation=funded_buyer.organisation)
    assert f'data-balance="held">{balances["held"] // 100}.{balances["held"] % 100:02d}<' in html


def test_the_portfolio_pages_each_list_on_its_own(client, instrument, funded_buyer, listed_provider, runner, monkeypatch):
    from exchange import views_portfolio

    monkeypatch.setattr(views_portfolio, "PAGE_SIZE", 2)
    buyer = token_client(funded_buyer)
    for k in range(5):
        buyer.post("/api/v1/orders/", order(instrument, "buy", f"19.{k}0", 1), format="json")
    drain(runner)
    client.force_login(funded_buyer.user)
    first = client.get("/portfolio/").content.decode()
    assert first.count("data-order=") == 2 and "?open=2#open" in first
    second = client.get("/portfolio/?open=3&fills=2").content.decode()
    ids = sorted(Order.objects.values_list("id", flat=True))
    assert f'data-order="{ids[0]}"' in second and "?open=2&amp;fills=2#open" in second
    # Page numbers that are not numbers, or past the end, give a page, not an error.
    assert client.get("/portfolio/?open=abc&fills=999999999999999999999").status_code == 200


def test_the_portfolio_costs_the_same_queries_however_much_it_holds(client, instrument, funded_buyer, listed_provider,
                                                                     runner):
    client.force_login(funded_buyer.user)
    client.get("/portfolio/")  # sessions, content types: what the first request of a client loads once
    with CaptureQueriesContext(connection) as empty:
        client.get("/portfolio/")
    seller = token_client(listed_provider, scopes=("read", "trade", "provide"))
    buyer = token_client(funded_buyer)
    for qty in (1, 2, 3, 4):
        seller.post("/api/v1/orders/", order(instrument, "sell", "20.00", qty), format="json")
        buyer.post("/api/v1/orders/", order(instrument, "buy", "20.00", qty), format="json")
        buyer.post("/api/v1/orders/", order(instrument, "buy", "18.00", qty), format="json")
    drain(runner)
    with CaptureQueriesContext(connection) as full:
        page = client.get("/portfolio/")
    assert page.content.decode().count("data-fill=") == 4
    assert len(full.captured_queries) <= len(empty.captured_queries) + 6  # a count query per list that has rows


def test_the_portfolio_needs_a_sign_in(client):
    response = client.get("/portfolio/")
    assert response.status_code == 302 and "/accounts/sign-in/" in response["Location"]


def test_the_terminal_shows_a_member_its_funds_and_fees(client, instrument, funded_buyer):
    client.force_login(funded_buyer.user)
    page = client.get(f"/markets/{instrument.code}/").content.decode()
    available = ledger.balances(organisation=funded_buyer.organisation)["available"]
    assert f'id="available">{available // 100}.{available % 100:02d}<' in page
    assert "2 / 5 bp" in page and '"taker_bps": 5' in page
    assert 'id="order-form"' in page


def test_the_terminal_without_a_sign_in_offers_one(client, instrument):
    page = client.get(f"/markets/{instrument.code}/").content.decode()
    assert 'id="order-form"' not in page and "/accounts/sign-in/?next=" in page
    assert '"signed_in": false' in page
