"""Every page a visitor, a buyer, a provider and a regulator can reach, in headless Chromium at a
phone's width (390 px) and a laptop's (1366 px): the page never scrolls sideways, the browser
reports no JavaScript error and no failed request, and a full-page screenshot of each is kept in
``artifacts/screenshots/pages/<who>-<page>-<width>.png`` to look at.

One exchange (web server and engine) and one browser serve the whole module, on the demo
market with a trade in it; each person browses in a context of their own. Also here: the
menu folds on a phone and opens without JavaScript, and the market overview follows a trade live."""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings

from tests.browser.conftest import CHROMIUM, chromium_launched

WIDTHS = (390, 1366)
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots" / "pages"

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
# A page taller than this is shot at its first screen only (ReDoc at 390 px is 200,000 px tall).
SHOT_MAX_HEIGHT = 20_000

BUYER, PROVIDER, REGULATOR = "buyer@lingyun.example", "ops@westhub.example", "supervisor@regulator.example"
TREASURER = "treasury@exchange.example"  # the operator's: completes deposit and withdrawal requests

# (who, page name, path, expected status). Paths name the world's rows in braces.
PAGES = [
    ("visitor", "home", "/", 200),
    ("visitor", "markets", "/markets/", 200),
    ("visitor", "terminal", "/markets/{instrument}/", 200),
    ("visitor", "capacity", "/capacity/", 200),
    ("visitor", "catalogue", "/capacity/catalogue/", 200),
    ("visitor", "asset", "/capacity/assets/{asset}/", 200),
    ("visitor", "sla", "/settlement/sla/", 200),
    ("visitor", "sign-in", "/accounts/sign-in/", 200),
    ("visitor", "sign-up", "/accounts/sign-up/", 200),
    ("visitor", "api-docs", "/api/docs/", 200),
    ("visitor", "api-redoc", "/api/redoc/", 200),
    ("visitor", "not-found", "/no-such-page/", 404),
    ("buyer", "home", "/", 200),
    ("buyer", "markets", "/markets/", 200),
    ("buyer", "terminal", "/markets/{instrument}/", 200),
    ("buyer", "capacity", "/capacity/", 200),
    ("buyer", "portfolio", "/portfolio/", 200),
    ("buyer", "funds", "/funds/", 200),
    ("buyer", "my-capacity", "/settlement/capacity/", 200),
    ("buyer", "statements", "/settlement/statements/", 200),
    ("buyer", "tokens", "/accounts/tokens/", 200),
    ("buyer", "refused", "/supervision/", 403),
    ("provider", "home", "/", 200),
    ("provider", "terminal", "/markets/{instrument}/", 200),
    ("provider", "portfolio", "/portfolio/", 200),
    ("provider", "funds", "/funds/", 200),
    ("provider", "dashboard", "/capacity/provider/", 200),
    ("provider", "asset", "/capacity/assets/{asset}/", 200),
    ("provider", "deliveries", "/settlement/deliveries/", 200),
    ("provider", "metering-upload", "/settlement/metering/upload/", 200),
    ("provider", "sla", "/settlement/sla/", 200),
    ("provider", "statements", "/settlement/statements/", 200),
    ("provider", "tokens", "/accounts/tokens/", 200),
    ("regulator", "console", "/supervision/", 200),
    ("regulator", "statistics", "/supervision/statistics/", 200),
    ("regulator", "instruments", "/supervision/instruments/", 200),
    ("regulator", "instrument-classes", "/supervision/instruments/classes/", 200),
    ("regulator", "instrument-hubs", "/supervision/instruments/hubs/", 200),
    ("regulator", "instrument", "/supervision/instruments/{instrument}/", 200),
    ("regulator", "participants", "/supervision/participants/", 200),
    ("regulator", "participant", "/supervision/participants/{buyer_org}/", 200),
    ("regulator", "owners", "/supervision/participants/owners/", 200),
    ("regulator", "tiers", "/supervision/participants/tiers/", 200),
    ("regulator", "attestors", "/supervision/participants/attestors/", 200),
    ("regulator", "disputes", "/supervision/disputes/", 200),
    ("regulator", "audit", "/supervision/audit/", 200),
    ("regulator", "replay", "/supervision/replay/", 200),
    ("regulator", "provenance", "/supervision/provenance/", 200),
    ("regulator", "alerts", "/supervision/alerts/", 200),
    ("regulator", "alert", "/supervision/alerts/{alert}/", 200),
    ("regulator", "rules", "/supervision/rules/", 200),
    ("regulator", "statements", "/settlement/statements/", 200),
    ("treasurer", "funds", "/funds/", 200),
]


@dataclass
class Site:
    base_url: str
    ids: dict[str, object]
    sessions: dict[str, str]  # who → session cookie


def _world() -> tuple[dict[str, object], dict[str, str]]:
    """The demo market, one instrument trading with a trade and resting orders on both sides,
    a token, a surveillance alert; and a signed-in session for each person."""
    from django.core.management import call_command
    from django.test import Client

    from accounts.access import actor_from_user
    from accounts.models import Membership, User
    from accounts.services import token_create
    from exchange.funds import funds_request_create
    from exchange.models import Instrument
    from exchange.services import order_place
    from marketplace.models import ComputeAsset
    from supervision.models import Alert, Rule
    from supervision.surveillance.params import rules_ensure

    call_command("seed_demo", stdout=io.StringIO())
    instrument = (Instrument.objects.filter(compute_class__code="AI80", hub__code="NX")
                  .order_by("delivery_start")[2])
    Instrument.objects.filter(pk=instrument.pk).update(state=Instrument.State.CONTINUOUS, reference_price_fen=1600)
    users = {who: User.objects.get(email=email) for who, email in
             (("buyer", BUYER), ("provider", PROVIDER), ("regulator", REGULATOR), ("treasurer", TREASURER))}
    buyer, provider = actor_from_user(users["buyer"]), actor_from_user(users["provider"])
    for actor, side, price, qty in ((provider, "sell", "16.00", 40), (provider, "sell", "16.50", 60),
                                    (buyer, "buy", "16.00", 25), (buyer, "buy", "15.60", 20)):
        order_place(actor=actor, data={"instrument": instrument.code, "side": side, "price": price, "qty": qty})
    _, secret = token_create(membership=Membership.objects.get(user=users["buyer"]), name="trading bot",
                             scopes=["read", "trade"])
    funds_request_create(actor=buyer, direction="withdrawal", amount="1250.00", bank_account="6222 0000 1234 5678")
    funds_request_create(actor=buyer, direction="deposit", amount="50000.00")
    rules_ensure()
    alert = Alert.objects.create(
        rule=Rule.objects.get(code="price_move"), key="audit", severity="medium", instrument=instrument,
        evidence={"figures": {"move_bps": 1200}, "orders": [], "trades": []})
    ids = {"instrument": instrument.code, "alert": alert.id,
           "asset": ComputeAsset.objects.get(name="Zhongwei Hall A").id,
           "buyer_org": Membership.objects.get(user=users["buyer"]).organisation_id, "buyer_token": secret}
    sessions = {}
    for who, user in users.items():
        client = Client()
        client.force_login(user)
        sessions[who] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return ids, sessions


def _wait_for_trade(timeout: float = 30) -> None:
    from exchange.models import Trade

    deadline = time.monotonic() + timeout
    while not Trade.objects.exists():
        if time.monotonic() > deadline:
            raise AssertionError("the engine made no trade from the world's crossing orders")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def site(django_db_setup, django_db_blocker):
    """The world in the test database, the exchange running on it; emptied afterwards, as a
    transactional test leaves it."""
    from django.core.management import call_command

    from tests.processes import exchange_running

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    from django.db import connection, connections
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        # pytest-django makes the test database only when a collected test is marked for it;
        # these tests are not (the mark would empty the tables after each one), so when this
        # module runs alone, make it here: never the real database named in DATABASE_URL.
        made = None
        if connection.settings_dict["NAME"] != connection.creation._get_test_db_name():
            made = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        try:
            ids, sessions = _world()
            with exchange_running(SECURE_COOKIES="0", DEBUG="1") as base_url:
                _wait_for_trade()
                yield Site(base_url=base_url, ids=ids, sessions=sessions)
        finally:
            connections.close_all()
            if made is None:
                call_command("flush", interactive=False, verbosity=0)
            else:
                teardown_databases(made, verbosity=0)


@pytest.fixture(scope="module")
def browser():
    with chromium_launched() as browser:
        yield browser


@pytest.fixture(scope="module")
def contexts(site, browser):
    """One browser context per person, signed in by their session cookie; made when first asked for."""
    made = {}

    def context_for(who: str):
        if who not in made:
            context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
            offline(context, site.base_url)
            if who in site.sessions:
                context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": site.sessions[who],
                                      "url": site.base_url}])
            made[who] = context
        return made[who]

    yield context_for
    for context in made.values():
        context.close()


def offline(context, base_url: str) -> None:
    """Refuse every request to another host: each page must work without the internet.
    ReDoc's bundle still asks for its maker's logo (and drops the image when it does not load)."""
    site = urlsplit(base_url).netloc

    def handle(route):
        url = route.request.url
        if urlsplit(url).netloc == site or url.startswith(("data:", "blob:")):
            route.continue_()
        elif url == REDOC_LOGO:
            route.fulfill(status=204)
        else:
            route.abort()

    context.route("**/*", handle)


WIDTH_JS = """() => ({
    scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
    clipped: [getComputedStyle(document.documentElement).overflowX, getComputedStyle(document.body).overflowX]
             .filter(v => v === 'hidden' || v === 'clip'),
    // What sticks out, leaving out what a scrolling box around it holds (unless nothing
    // else does: something positioned inside such a box can escape it).
    widest: ((all) => {
        const loose = all.filter(e => {
            for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
                if (getComputedStyle(a).overflowX !== 'visible') return false;
            }
            return true;
        });
        return loose.length ? loose : all;
    })([...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1))
    .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                            + (typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\\s+/).join('.') : '')
                            + ' ' + Math.round(e.getBoundingClientRect().right) + 'px'),
})"""


def audit(page, url: str, expected_status: int, widths=(None,), shoot=None) -> list[str]:
    """Open ``url`` in ``page`` and return what is wrong with it at each of ``widths`` (the
    page is loaded once, at the first, then widened; ``None``: the page's own width), calling
    ``shoot(width)`` at each once it is checked."""
    problems: list[str] = []

    def expected_error(message_url: str) -> bool:
        # A page answered with its expected 4xx shows up as a console error, and on such a page
        # Chromium asks for /favicon.ico by itself.
        return expected_status >= 400 and message_url in (url, urljoin(url, "/favicon.ico"))

    def on_console(msg):
        if msg.type == "error" and not (msg.text.startswith("Failed to load resource")
                                        and expected_error(msg.location.get("url"))):
            problems.append(f"console error: {msg.text} ({msg.location.get('url')})")

    def on_response(response):
        if response.status >= 400 and response.url != url and not expected_error(response.url):
            problems.append(f"{response.status} for {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("response", on_response)
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url} {request.failure}"))
    try:
        for n, width in enumerate(widths):
            prefix = f"{width} px: " if width else ""
            if width:
                page.set_viewport_size({"width": width, "height": 900})
            if n == 0:
                response = page.goto(url, wait_until="networkidle")
                if response.status != expected_status:
                    problems.append(f"status {response.status}, expected {expected_status}")
            else:
                # Laid out again at the new width (two frames: the resize's, then the one after it).
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            measured = page.evaluate(WIDTH_JS)
            if measured["scroll"] > measured["inner"]:
                problems.append(f"{prefix}scrolls sideways: {measured['scroll']} px of page in {measured['inner']} px; "
                                f"first too wide: {measured['widest']}")
            if measured["clipped"]:
                # Hiding the overflow of the whole page would pass the check above and cut content off.
                problems.append(f"{prefix}the page hides its own overflow: {measured['clipped']}")
            if shoot is not None:
                shoot(width)
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("response", on_response)
    return problems


@pytest.mark.parametrize(("who", "name", "path", "status"), PAGES, ids=[f"{w}-{n}" for w, n, _, _ in PAGES])
def test_page_fits_and_runs_clean(site, contexts, who, name, path, status):
    url = site.base_url + path.format(**site.ids)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = contexts(who).new_page()

    def shoot(width):
        tall = page.evaluate("document.documentElement.scrollHeight") > SHOT_MAX_HEIGHT
        page.screenshot(path=str(SCREENSHOTS / f"{who}-{name}-{width}.png"), full_page=not tall)

    try:
        problems = audit(page, url, status, widths=WIDTHS, shoot=shoot)
    finally:
        page.close()
    assert not problems, f"{urlsplit(url).path} as {who}:\n" + "\n".join(problems)


def test_every_page_is_audited():
    """A new page (a route outside the API with no converter) is added to PAGES or named here as not a page."""
    from tests.test_authorisation_matrix import openapi_document, page_routes

    not_pages = {"/healthz", "/i18n/setlang/", "/admin/", "/funds/demo-top-up/", "/accounts/sign-out/",
                 "/settlement/statements.csv", "/supervision/audit.csv", "/settlement/metering/upload/chunk/", "/funds/request/",
                 "/capacity/provider/assets/", "/capacity/provider/listings/", "/supervision/instruments/actions/",
                 # The OpenAPI document itself, and Swagger UI's and ReDoc's own pages (tests/browser/test_api_docs.py).
                 "/api/schema/", "/api/docs/", "/api/redoc/"}
    audited = {path for _, _, path, _ in PAGES}
    missing = {route for route in page_routes(openapi_document()) if "<" not in route} - audited - not_pages
    assert missing == set()


CHINESE_PAGES = [(who, name, path) for who, name, path, status in PAGES
                 if status == 200 and name in ("home", "markets", "terminal", "portfolio", "funds", "statements",
                                               "dashboard", "deliveries", "console", "instruments", "alerts")]


@pytest.mark.parametrize(("who", "name", "path"), CHINESE_PAGES, ids=[f"{w}-{n}" for w, n, _ in CHINESE_PAGES])
def test_page_fits_a_phone_in_chinese(site, browser, who, name, path):
    """The same at 390 px in Simplified Chinese, whose words break differently."""
    context = browser.new_context(viewport={"width": 390, "height": 900}, locale="zh-CN",
                                  extra_http_headers={"Accept-Language": "zh-Hans"})
    try:
        offline(context, site.base_url)
        if who in site.sessions:
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": site.sessions[who],
                                  "url": site.base_url}])
        page = context.new_page()
        url = site.base_url + path.format(**site.ids)
        problems = audit(page, url, 200)
        assert page.locator("html").get_attribute("lang") == "zh-hans"
        page.screenshot(path=str(SCREENSHOTS / f"{who}-{name}-zh-390.png"), full_page=True)
        assert not problems, f"{path} as {who}, in Chinese:\n" + "\n".join(problems)
    finally:
        context.close()


def test_the_menu_folds_on_a_phone_and_opens_without_javascript(site, browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    try:
        offline(context, site.base_url)
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": site.sessions["buyer"], "url": site.base_url}])
        page = context.new_page()
        page.goto(site.base_url + "/")
        markets, me = page.locator("header nav a", has_text="Markets"), page.locator("header .session", has_text=BUYER)
        expect(markets).to_be_hidden()
        expect(me).to_be_hidden()
        page.click("header .menu-button")
        expect(markets).to_be_visible()
        expect(me).to_be_visible()
        page.click("header .menu-button")
        expect(markets).to_be_hidden()
        page.click("header .menu-button")
        markets.click()
        page.wait_for_url(site.base_url + "/markets/")

        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(site.base_url + "/")
        expect(page.locator("header .menu-button")).to_be_hidden()
        expect(markets).to_be_visible()
        expect(me).to_be_visible()
    finally:
        context.close()


def test_the_overview_follows_trades_live(site, contexts):
    """Runs last: it trades in the world the pages above were shot in. The buyer's program
    places the order over the API, as it would; the test process keeps out of the database."""
    import requests
    from playwright.sync_api import expect

    page = contexts("buyer").new_page()
    try:
        page.goto(site.base_url + "/markets/")
        row = page.locator(f'#markets tr[data-instrument="{site.ids["instrument"]}"]')
        expect(row.locator("[data-field=volume]")).to_have_text("25")
        expect(row.locator("[data-field=change]")).to_contain_text("0.00")
        expect(row).to_have_attribute("data-live", "", timeout=10_000)  # its snapshot came: subscribed
        # Takes the 15 SCU·h left at 16.00 and 5 of the 60 at 16.50.
        answer = requests.post(site.base_url + "/api/v1/orders/", timeout=30,
                               headers={"Authorization": f"Token {site.ids['buyer_token']}"},
                               json={"instrument": site.ids["instrument"], "side": "buy", "price": "16.50", "qty": 20})
        assert answer.status_code == 201, answer.text
        expect(row.locator("[data-field=volume]")).to_have_text("45", timeout=10_000)
        expect(row.locator("[data-field=last]")).to_have_text("16.50")
        expect(row.locator("[data-field=change]")).to_have_text("+0.50 (+3.1 %)")
        expect(row.locator("[data-field=change]")).to_have_class(re.compile(r"\bup\b"))
    finally:
        page.close()
