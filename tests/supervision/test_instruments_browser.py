"""In headless Chromium, against the running exchange (web server and engine processes): a
regulator signs in, approves a pending KYC application, halts an instrument from the console
with a reason, and the market page already open in a second tab shows the halt as it
happens, without reloading (both halted pages are saved with the console's screenshots)."""

import pytest
from playwright.sync_api import expect

from accounts.access import actor_from_user
from exchange import ledger
from exchange.models import Instrument
from exchange.services import order_place
from supervision.models import SupervisionAction
from tests.browser.conftest import browser_page, live_exchange  # noqa: F401 (fixtures)
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import PASSWORD, OrganisationFactory
from tests.supervision.screenshots import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def market(transactional_db, regulator, buyer, provider):
    """Made before the exchange starts; the regulator signs in with the production hasher's password."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from exchange.models import FeeTier

    FeeTier.objects.create(code="standard", name="Standard", maker_bps=2, taker_bps=5, is_default=True)
    instrument = make_instrument()
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=100)
    ledger.deposit(organisation=buyer.organisation, amount_fen=100_000_00)
    regulator.user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    regulator.user.save(update_fields=["password"])
    OrganisationFactory(name="Applicant Compute Ltd", kyc_status="pending")
    return instrument


def test_a_halt_from_the_console_reaches_an_open_market_page(market, live_exchange, browser_page, regulator, provider,
                                                             tmp_path):
    instrument = market
    # Two tabs of one browser window (the fixture's page has a context of its own).
    window = browser_page.context.browser.new_context(viewport={"width": 1300, "height": 900})
    console, watcher = window.new_page(), window.new_page()

    # The market page, open before the halt; an ask placed now arrives over its socket, so the
    # page is subscribed from here on.
    watcher.goto(f"{live_exchange}/markets/{instrument.code}/")
    expect(watcher.locator("#ticker [data-field=state]")).to_have_text("Continuous trading")
    order_place(actor=actor_from_user(provider.user),
                data={"instrument": instrument.code, "side": "sell", "price": "21.00", "qty": 30})
    expect(watcher.locator("#asks tr").first).to_contain_text("21.00", timeout=10_000)
    expect(watcher.locator("[data-when-state=halted]")).to_be_hidden()
    watcher.evaluate("window.notReloaded = true")

    console.goto(f"{live_exchange}/accounts/sign-in/?next=/supervision/participants/")
    console.fill("input[name=username]", regulator.user.email)
    console.fill("input[name=password]", PASSWORD)
    console.click("form button[type=submit]")
    console.wait_for_url(f"{live_exchange}/supervision/participants/")

    # The KYC queue: approve the pending application.
    from accounts.models import Organisation

    applicant = Organisation.objects.get(name="Applicant Compute Ltd")
    application = console.locator(f"#application-{applicant.id}")
    expect(application).to_contain_text("Applicant Compute Ltd")
    application.locator("input[name=reason]").first.fill("Documents checked")
    application.get_by_role("button", name="Approve").click()
    expect(console.locator(f"#application-{applicant.id}")).to_have_count(0)
    applicant.refresh_from_db()
    assert applicant.kyc_status == Organisation.Kyc.VERIFIED
    console.screenshot(path=str(tmp_path / "console-participants.png"), full_page=True)

    console.goto(f"{live_exchange}/supervision/instruments/")
    row = console.locator(f"#instruments tr[data-instrument='{instrument.code}']")
    expect(row.locator("[data-field=state]")).to_have_text("Continuous trading")
    console.screenshot(path=str(tmp_path / "console-instruments.png"), full_page=True)
    row.get_by_role("link", name=instrument.code).click()
    console.wait_for_url(f"{live_exchange}/supervision/instruments/{instrument.code}/")

    # The reason is required: the browser will not send the form without it.
    console.click("#halt button[type=submit]")
    assert console.url.endswith(f"/supervision/instruments/{instrument.code}/")
    assert not SupervisionAction.objects.filter(action="instrument.halt").exists()
    console.fill("#halt-reason", "Orders far from the touch, cancelled within seconds; looking into it")
    console.click("#halt button[type=submit]")
    expect(console.locator(".messages")).to_contain_text(f"Halted: {instrument.code}. Open orders are kept.")
    expect(console.locator("#instrument [data-field=state]")).to_have_text("Halted")
    expect(console.locator("#actions")).to_contain_text("looking into it")

    expect(watcher.locator("#ticker [data-field=state]")).to_have_text("Halted", timeout=10_000)
    expect(watcher.locator("[data-when-state=halted]")).to_be_visible()
    expect(watcher.locator("#asks tr").first).to_contain_text("21.00")  # kept in the halted book
    assert watcher.evaluate("window.notReloaded") is True
    shots = [screenshot(watcher, "market-halted"), screenshot(console, "instrument-halted")]
    assert all(path.stat().st_size > 10_000 for path in shots)

    window.close()
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.HALTED
    record = SupervisionAction.objects.get(action="instrument.halt")
    assert (record.action, record.actor_id, record.instrument_id) == ("instrument.halt", regulator.user_id, instrument.id)
