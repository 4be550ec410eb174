"""The console in headless Chromium against a running web server, one server and one browser
for the module:

- a regulator has the alerts page open; a ring of trades from the scenario generator raises an
  alert, which appears on the page as it is written, without a reload; the regulator takes it
  under review and closes it with a note, and the alert's page shows each new state;
- every console page, on a market the scenario generator and the statistics helpers traded
  in, saved as a full-page screenshot (``tests/supervision/screenshots.py``); the overview
  and an alert's evidence in Simplified Chinese too.

No page logs a script error.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.access import actor_from_user
from accounts.models import Organisation
from supervision.models import Alert
from supervision.surveillance.scenarios import PATTERNS, scenario_run
from tests.browser.conftest import CHROMIUM, chromium_launched
from tests.exchange.conftest import fee_tier  # noqa: F401 (a fixture)
from tests.factories import PASSWORD
from tests.processes import serve, stop
from tests.settlement.conftest import sla_schedule  # noqa: F401 (a fixture)
from tests.supervision.kyc_helpers import applicant
from tests.supervision.screenshots import WIDTH, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    with django_db_blocker.unblock():
        process, base_url = serve(SECURE_COOKIES="0", DEBUG="1")
    yield base_url
    with django_db_blocker.unblock():
        stop(process)


@pytest.fixture(scope="module")
def chromium(web):
    with chromium_launched() as browser:
        yield browser


@pytest.fixture
def page(chromium, regulator):
    """A fresh browser context, signed in as ``regulator``; ``page.errors`` collects script errors."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.db import connections

    # The web server checks passwords with the production hasher.
    regulator.user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    regulator.user.save(update_fields=["password"])
    context = chromium.new_context(viewport={"width": WIDTH, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    yield tab
    context.close()
    connections.close_all()  # ORM calls made while Playwright's loop runs get connections of their own


def off_the_loop(work):
    """``work()`` in a thread of its own: what it commits is published to the console stream
    through ``async_to_sync``, which refuses the thread Playwright's event loop runs in."""
    from django.db import connections

    result = []

    def run():
        try:
            result.append(work())
        except BaseException as exc:  # raised again in the test
            result.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(600)
    (value,) = result
    if isinstance(value, BaseException):
        raise value
    return value


def sign_in(tab, web: str, regulator, path: str) -> None:
    tab.goto(f"{web}/accounts/sign-in/?next={path}")
    tab.fill("input[name=username]", regulator.user.email)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("form button[type=submit]")
    tab.wait_for_url(f"{web}{path}")


def test_an_alert_appears_live_and_is_reviewed_and_closed_with_a_note(web, page, regulator):
    frames = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda frame: frames.append(frame)))
    sign_in(page, web, regulator, "/supervision/alerts/")
    deadline = time.monotonic() + 10
    while not any("hello" in str(frame) for frame in frames):  # subscribed: nothing written from now on is missed
        assert time.monotonic() < deadline, "the console stream did not greet the page"
        page.wait_for_timeout(50)
    expect(page.locator("#live-alerts")).to_be_hidden()
    page.evaluate("window.notReloaded = true")

    outcome = off_the_loop(lambda: scenario_run(("wash_circular",), rounds=2, buyers=3, providers=3,
                                                clean_instruments=0))
    assert outcome.ok, outcome.report()
    (alert,) = outcome.alerts

    live = page.locator("#live-alerts")
    expect(live).to_be_visible(timeout=10_000)
    expect(live.locator("li").first).to_contain_text(f"#{alert.id} Wash trades: circular trading · high")
    assert page.evaluate("window.notReloaded") is True

    live.get_by_role("link", name=f"#{alert.id}").click()
    page.wait_for_url(f"{web}/supervision/alerts/{alert.id}/")
    state = page.locator("dl.facts div", has_text="State").locator("dd")
    expect(state).to_have_text("Open")
    expect(page.locator("h1")).to_contain_text("Wash trades: circular trading")
    page.fill("#review-note", "Three unrelated owners; asking each for its reasons")
    page.get_by_role("button", name="Take under review").click()
    expect(page.locator(".messages")).to_contain_text(f"Alert {alert.id} is under review.")
    expect(state).to_have_text("Under review")
    expect(page.get_by_role("button", name="Take under review")).to_have_count(0)

    page.fill("#close-note", "The ring was a test of their settlement systems, agreed in advance; no abuse")
    page.get_by_role("button", name="Close the alert").click()
    expect(page.locator(".messages")).to_contain_text(f"Alert {alert.id} is closed.")
    expect(state).to_have_text("Closed")
    expect(page.locator("section.card").first).to_contain_text("agreed in advance; no abuse")
    expect(page.get_by_role("button", name="Close the alert")).to_have_count(0)

    alert.refresh_from_db()
    assert alert.state == Alert.State.CLOSED and alert.note.endswith("no abuse")
    assert page.errors == []


def _seed(regulator):
    """The statistics helpers' settled market (with a dispute decided), a dispute left open in
    another instrument, three KYC applications, and the scenario generator's every pattern."""
    from settlement.services import dispute_open, metering_report
    from tests.exchange.conftest import make_instrument
    from tests.settlement.conftest import Market, funded
    from tests.settlement.parties import parties_make, window_open
    from tests.supervision.statistics_market import statistics_market_make

    market = statistics_market_make(regulator)
    provider = funded("provider")
    delivering = Market(make_instrument(days_ahead=4))
    parties = parties_make(delivering, provider, regulator)
    window_open(delivering)
    report = metering_report(actor=actor_from_user(provider.user), allocation_id=parties.allocation.id,
                             device_hours="70", now=delivering.during)
    dispute_open(actor=actor_from_user(parties.members["holder"].user), allocation_id=parties.allocation.id,
                 reason="Twenty of the hundred hours the cluster's interconnect was down", report_id=report.id)
    # Names a reader of the screenshots can tell apart (the factories number them).
    names = {**{market.members[key].organisation_id: name for key, name in (
        ("P1", "Zhongwei Cloud Hall"), ("P2", "Wuhu Compute Park"), ("B1", "Hangzhou Vision Labs"),
        ("B2", "Chengdu Genomics"), ("B3", "Suzhou Render Farm"))},
        **{parties.members[key].organisation_id: name for key, name in (
            ("provider", "Qingyang Data Centre"), ("holder", "Shenzhen Robotics"),
            ("other_provider", "Ulanqab Green Compute"), ("other_buyer", "Nanjing Speech AI"))}}
    for organisation_id, name in names.items():
        Organisation.objects.filter(pk=organisation_id).update(name=name)
    for name in ("Lanzhou Inference Co-op", "Harbin Render Works", "Xiamen Quant Research"):
        applicant(name)
    outcome = scenario_run(PATTERNS, rounds=8, buyers=8, providers=6, clean_instruments=1)
    # Every pattern flagged (whether eight rounds of clean trading leave one buyer holding more
    # than its share is the scenario tests' question, with forty).
    assert not outcome.missing, outcome.report()
    return market, outcome


def test_every_console_page_with_real_data(web, page, regulator, fee_tier, sla_schedule):  # noqa: F811
    market, outcome = off_the_loop(lambda: _seed(regulator))
    spoofing = next(a for a in outcome.alerts if a.rule.code == "spoofing")
    Alert.objects.filter(pk=outcome.alerts[0].pk).update(state=Alert.State.UNDER_REVIEW)

    sign_in(page, web, regulator, "/supervision/")
    expect(page.locator("[data-field=open_alerts]")).to_have_text(str(Alert.objects.filter(state="open").count()))
    expect(page.locator("[data-field=pending_kyc]")).to_have_text("3")
    expect(page.locator("[data-field=open_disputes]")).to_have_text("1")
    shots = [screenshot(page, "overview")]

    def shot(path: str, name: str, check) -> None:
        """Open a console page, wait for what shows it has its data, and keep its screenshot."""
        page.goto(f"{web}{path}")
        check()
        shots.append(screenshot(page, name))

    shot("/supervision/participants/", "participants",
         lambda: expect(page.locator("body")).to_contain_text("Harbin Render Works"))
    shot("/supervision/instruments/", "instruments",
         lambda: expect(page.locator("#instruments tr[data-instrument]").first).to_be_visible())
    shot("/supervision/alerts/", "alerts",
         lambda: expect(page.locator("table.alerts tbody tr")).to_have_count(min(Alert.objects.count(), 25)))
    shot(f"/supervision/alerts/{spoofing.id}/", "alert-evidence",
         lambda: expect(page.locator("h1")).to_contain_text("Spoofing and layering"))
    shot("/supervision/rules/", "rules",
         lambda: expect(page.locator("body")).to_contain_text("Withholding"))
    shot("/supervision/audit/", "audit",
         lambda: expect(page.locator("table tbody tr").first).to_be_visible())
    shot(f"/supervision/replay/?instrument={spoofing.instrument.code}", "replay",
         lambda: expect(page.locator("#replay-result .verdict")).to_contain_text("Fills reproduce exactly"))
    shot("/supervision/provenance/?chain=1", "provenance",
         lambda: expect(page.locator(".verdict")).to_contain_text("Intact"))
    first = min(market.delivery_day, timezone.localtime(market.trades["t1"].created_at).date()) - timedelta(days=1)
    shot(f"/supervision/statistics/?from={first}&interval=day", "statistics",
         lambda: page.locator("[data-chart] .uplot").first.wait_for())
    shot("/supervision/disputes/", "disputes",
         lambda: expect(page.locator("body")).to_contain_text("interconnect was down"))
    shot(f"/supervision/instruments/{spoofing.instrument.code}/", "instrument",
         lambda: (expect(page.locator("#instrument h1")).to_have_text(spoofing.instrument.code),
                  expect(page.locator("#instrument [data-field=state]")).to_have_text("Continuous trading")))
    shot("/supervision/instruments/classes/", "instrument-classes",
         lambda: expect(page.locator("#groups tr[data-code=AI80]")).to_be_visible())
    shot("/supervision/instruments/hubs/", "instrument-hubs",
         lambda: expect(page.locator("#groups tr[data-code=NX]")).to_be_visible())
    shot("/supervision/participants/owners/", "owners",
         lambda: expect(page.locator("body")).to_contain_text("Spoof Group"))
    shot("/supervision/participants/tiers/", "fee-tiers",
         lambda: expect(page.locator("h1")).to_have_text("Fee tiers"))
    shot("/supervision/participants/attestors/", "attestors",
         lambda: expect(page.locator("body")).to_contain_text("Benchmark Lab"))

    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": web}])
    shot("/supervision/", "overview-zh", lambda: expect(page.locator("h1").first).to_have_text("监管控制台"))
    shot(f"/supervision/alerts/{spoofing.id}/", "alert-evidence-zh",
         lambda: expect(page.locator("h1")).to_contain_text("幌骗与分层挂单"))

    assert all(path.stat().st_size > 10_000 for path in shots)
    assert page.errors == []
