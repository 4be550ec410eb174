"""The trading terminal end to end, in two browsers: a buyer and a provider trade with each
other live; resting orders are amended and cancelled from the page; a dropped market socket
comes back with the right book; refusals show by the field. No page logs a JavaScript error."""

import re

import pytest
from playwright.sync_api import expect

from accounts.access import actor_from_user
from exchange import ledger
from exchange.services import order_place
from tests.browser.conftest import REFUSED_LOAD, artifact_path, chromium_launched
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def _production_password(membership):
    # The server processes check passwords with the production hasher, not the tests' fast one.
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    membership.user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    membership.user.save(update_fields=["password"])


@pytest.fixture
def market(transactional_db, buyer, provider):
    """Set up before the exchange starts, so its runner finds the instrument trading."""
    from exchange.models import FeeTier

    FeeTier.objects.create(code="standard", name="Standard", maker_bps=2, taker_bps=5, is_default=True)
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=200)
    ledger.deposit(organisation=buyer.organisation, amount_fen=100_000_00)
    _production_password(buyer)
    _production_password(provider)
    return instrument


@pytest.fixture
def browser():
    with chromium_launched() as browser:
        yield browser


class Session:
    """One person's browser context, collecting every JavaScript error its pages log."""

    def __init__(self, browser, base, membership, width=1366):
        self.base = base
        self.errors = []
        self.context = browser.new_context(viewport={"width": width, "height": 1000}, locale="en-GB")
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", lambda r: r.status >= 500 and self.errors.append(f"{r.status} {r.url}"))
        self.page.goto(f"{base}/accounts/sign-in/")
        self.page.fill("input[name=username]", membership.user.email)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("form button[type=submit]")
        self.page.wait_for_load_state()

    def _console(self, message):
        # A refusal the page shows (4xx) is logged by the browser as a failed load: the tests
        # cause some on purpose. Script errors, and any 5xx (the response handler), count.
        if message.type == "error" and not REFUSED_LOAD.match(message.text):
            self.errors.append(message.text)

    def terminal(self, instrument):
        self.page.goto(f"{self.base}/markets/{instrument.code}/")
        expect(self.page.locator("#conn-status")).to_have_attribute("data-conn", "live", timeout=10_000)
        return self.page


def order(page, *, side, price, qty, tif="GTC", type_="limit"):
    page.select_option("#order-form select[name=side]", side)
    page.select_option("#order-form select[name=type]", type_)
    if type_ == "limit":
        page.fill("#order-form input[name=price]", price)
    page.select_option("#order-form select[name=tif]", tif)
    page.fill("#order-form input[name=qty]", str(qty))
    page.click("#order-form button[type=submit]")


def test_two_people_trade_live_and_the_buyer_sees_the_allocation(market, live_exchange, browser, buyer, provider):
    from exchange.models import Allocation, Trade

    instrument = market
    buying = Session(browser, live_exchange, buyer)
    page = buying.page
    page.goto(f"{live_exchange}/capacity/")
    expect(page.locator("main")).to_contain_text(instrument.hub.name)
    page = buying.terminal(instrument)
    expect(page.locator("#available")).to_have_text("100000.00")
    order(page, side="buy", price="20.00", qty=10)
    expect(page.locator("#order-result")).to_contain_text("accepted", timeout=10_000)
    expect(page.locator("#my-orders tr")).to_have_count(1, timeout=10_000)
    expect(page.locator("#bids tr").first).to_contain_text("20.00", timeout=10_000)
    # The hold: 200.00 and at most 0.10 of taker fee, out of the available funds.
    expect(page.locator("#available")).to_have_text("99799.90", timeout=10_000)

    selling = Session(browser, live_exchange, provider)
    seller = selling.terminal(instrument)
    expect(seller.locator("#bids tr").first).to_contain_text("20.00", timeout=10_000)
    order(seller, side="sell", price="20.00", qty=10)
    expect(seller.locator("#order-result")).to_contain_text("#", timeout=10_000)

    for each in (page, seller):
        expect(each.locator("#tape tr").first).to_contain_text("10", timeout=10_000)
        expect(each.locator("#chart-last")).to_contain_text("C 20.00", timeout=10_000)
        expect(each.locator("#book-empty")).to_be_visible(timeout=10_000)
        expect(each.locator("#my-fills tr")).to_have_count(1, timeout=10_000)
    expect(page.locator("#my-orders-empty")).to_be_visible()
    expect(page.locator("#my-fills tr").first).to_contain_text("Buy")
    expect(seller.locator("#my-fills tr").first).to_contain_text("Sell")
    assert Trade.objects.get().qty == 10
    page.screenshot(path=artifact_path("terminal", "terminal-after-trade-1366.png"), full_page=True)

    allocation = Allocation.objects.get()
    assert (allocation.holder_id, allocation.scu_h) == (buyer.organisation_id, 10)
    page.goto(f"{live_exchange}/portfolio/")
    expect(page.locator(f"#allocations tr[data-allocation='{allocation.id}']")).to_be_visible()
    expect(page.locator("#allocations")).to_contain_text(instrument.code)
    expect(page.locator("#allocations")).to_contain_text("10")
    assert buying.errors == [] and selling.errors == []


def test_a_resting_order_is_amended_and_cancelled_from_the_page(market, live_exchange, browser, buyer):
    instrument = market
    session = Session(browser, live_exchange, buyer)
    page = session.terminal(instrument)
    order(page, side="buy", price="19.00", qty=20)
    row = page.locator("#my-orders tr").first
    expect(row).to_contain_text("19.00", timeout=10_000)

    row.get_by_role("button", name="Amend").click()
    row.locator("input[name=price]").fill("19.50")
    row.locator("input[name=qty]").fill("15")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#my-orders tr").first).to_contain_text("19.50", timeout=10_000)
    expect(page.locator("#bids tr").first).to_contain_text("19.50", timeout=10_000)
    expect(page.locator("#bids tr").first).to_contain_text("15", timeout=10_000)

    # An amendment the exchange refuses: the reason shows in the row, and nothing changes.
    row = page.locator("#my-orders tr").first
    row.get_by_role("button", name="Amend").click()
    row.locator("input[name=qty]").fill("40")
    row.get_by_role("button", name="Save").click()
    expect(row.locator(".row-error")).to_contain_text("At most the remaining 15", timeout=10_000)
    row.get_by_role("button", name="Back").click()

    page.locator("#my-orders tr").first.get_by_role("button", name="Cancel").click()
    expect(page.locator("#my-orders-empty")).to_be_visible(timeout=10_000)
    expect(page.locator("#book-empty")).to_be_visible(timeout=10_000)
    expect(page.locator("#available")).to_have_text("100000.00", timeout=10_000)
    assert session.errors == []


def test_a_dropped_market_socket_reconnects_with_the_right_book(market, live_exchange, browser, buyer, provider):
    instrument = market
    session = Session(browser, live_exchange, buyer)
    page = session.terminal(instrument)
    blocked = {"on": True}

    def route(ws):
        if blocked["on"]:
            ws.close()
        else:
            ws.connect_to_server()

    # From now on a new market socket is refused until unblocked: the network is down.
    page.route_web_socket(re.compile(r".*/ws/market/$"), route)
    page.evaluate("CX.sockets.forEach((ws) => { if (ws.url.endsWith('/ws/market/')) ws.close(); })")
    expect(page.locator("#conn-status")).to_have_attribute("data-conn", "reconnecting", timeout=5_000)

    # Meanwhile the book changes.
    order_place(actor=actor_from_user(provider.user),
                data={"instrument": instrument.code, "side": "sell", "price": "21.00", "qty": 7})
    page.wait_for_timeout(1_500)
    expect(page.locator("#asks tr")).to_have_count(0)

    blocked["on"] = False
    expect(page.locator("#conn-status")).to_have_attribute("data-conn", "live", timeout=15_000)
    expect(page.locator("#asks tr").first).to_contain_text("21.00", timeout=10_000)
    expect(page.locator("#asks tr").first).to_contain_text("7")
    assert session.errors == []


def test_refusals_show_by_the_field_and_large_orders_ask_first(market, live_exchange, browser, buyer):
    from exchange.models import Order

    instrument = market
    session = Session(browser, live_exchange, buyer)
    page = session.terminal(instrument)

    order(page, side="buy", price="20.001", qty=5)
    expect(page.locator("[data-error-for=price]")).to_contain_text("two decimal places", timeout=10_000)
    expect(page.locator("[data-field=price]")).to_have_class(re.compile("has-error"))

    order(page, side="buy", price="20.00", qty=0)
    expect(page.locator("[data-error-for=qty]")).to_contain_text("whole number", timeout=10_000)
    expect(page.locator("[data-error-for=price]")).to_have_text("")

    # A market order has no price field; an IOC cannot be post-only.
    page.select_option("#order-form select[name=type]", "market")
    expect(page.locator("#of-price")).to_be_hidden()
    expect(page.locator("#of-protect")).to_be_visible()
    page.select_option("#order-form select[name=type]", "limit")
    page.select_option("#order-form select[name=tif]", "GTD")
    expect(page.locator("#of-expires")).to_be_visible()

    # 3,000 × 20.00 = 60,000.00 CNY, above the 50,000.00 that needs a second click.
    order(page, side="buy", price="20.00", qty=3000, tif="GTC")
    expect(page.locator("#order-preview")).to_contain_text("60,000.00")
    expect(page.locator("#order-confirm")).to_be_visible()
    assert not Order.objects.exists()
    page.click("#order-confirm-no")
    expect(page.locator("#order-confirm")).to_be_hidden()
    order(page, side="buy", price="20.00", qty=3000, tif="GTC")
    page.click("#order-confirm-yes")
    expect(page.locator("#order-result")).to_contain_text("accepted", timeout=10_000)
    assert Order.objects.get().qty == 3000
    assert session.errors == []


def test_the_language_switch_turns_the_terminal_chinese(market, live_exchange, browser, buyer):
    instrument = market
    session = Session(browser, live_exchange, buyer)
    page = session.terminal(instrument)
    page.select_option("select[name=language]", "zh-hans")
    page.wait_for_load_state()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("#conn-status")).to_have_text("实时", timeout=10_000)
    expect(page.locator("label[for=of-price]")).to_contain_text("价格")
    expect(page.locator("#order-form select[name=side] option[value=buy]")).to_have_text("买入")
    # The choice is kept: the next page is Chinese too.
    page.goto(f"{live_exchange}/portfolio/")
    expect(page.locator("h1")).to_have_text("资产组合")
    assert session.errors == []
