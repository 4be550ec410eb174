"""A buyer signs in, sees a provider's ask live, and trades it from the market page."""

import pytest
from playwright.sync_api import expect

from accounts.access import actor_from_user
from exchange import ledger
from exchange.services import order_place
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def market(transactional_db, buyer, provider):
    """Set up before the exchange starts, so its runner finds the instrument trading."""
    from exchange.models import FeeTier

    FeeTier.objects.create(code="standard", name="Standard", maker_bps=2, taker_bps=5, is_default=True)
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    ledger.deposit(organisation=buyer.organisation, amount_fen=100_000_00)
    # The server processes check passwords with the production hasher, not the tests' fast one.
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    buyer.user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    buyer.user.save(update_fields=["password"])
    return instrument


def test_buyer_trades_from_the_market_page(market, live_exchange, browser_page, buyer, provider, tmp_path):
    from exchange.models import Trade

    instrument = market
    order_place(actor=actor_from_user(provider.user),
                data={"instrument": instrument.code, "side": "sell", "price": "20.00", "qty": 30})
    page = browser_page

    page.goto(f"{live_exchange}/accounts/sign-in/?next=/markets/{instrument.code}/")
    page.fill("input[name=username]", buyer.user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_exchange}/markets/{instrument.code}/")
    expect(page.locator("#asks tr").first).to_contain_text("20.00", timeout=10_000)

    page.select_option("#order-form select[name=side]", "buy")
    page.fill("#order-form input[name=price]", "20.00")
    page.fill("#order-form input[name=qty]", "12")
    page.click("#order-form button[type=submit]")
    expect(page.locator("#order-result")).to_contain_text("accepted", timeout=10_000)
    expect(page.locator("#tape tr").first).to_contain_text("12", timeout=10_000)
    expect(page.locator("#asks tr").first).to_contain_text("18", timeout=10_000)
    page.screenshot(path=str(tmp_path / "market.png"))
    assert Trade.objects.get().qty == 12

    page.fill("#order-form input[name=price]", "20.001")
    page.click("#order-form button[type=submit]")
    expect(page.locator("#order-result")).to_contain_text("two decimal places", timeout=10_000)
