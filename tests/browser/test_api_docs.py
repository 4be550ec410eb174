"""The API reference pages work with no internet: Swagger UI and ReDoc come from the site's
own static files, and with every request to another host refused, both still show the order
operations."""

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM, browser_page  # noqa: F401 (a fixture)
from tests.processes import serve, stop

pytestmark = pytest.mark.django_db(transaction=True)

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def web(transactional_db):
    """The web server alone: the reference pages need no engine."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    process, base_url = serve(SECURE_COOKIES="0", DEBUG="1")
    yield base_url
    stop(process)


def offline(page, base_url: str) -> list[str]:
    """Refuse every request that is not to the site; return the list of the refused, as it grows."""
    site = urlsplit(base_url).netloc
    refused: list[str] = []

    def handle(route):
        url = route.request.url
        if urlsplit(url).netloc == site or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    page.route("**/*", handle)
    return refused


def test_swagger_ui_and_redoc_work_offline(web, browser_page):
    page = browser_page
    page.expected_errors = [re.compile(r"Failed to load resource: net::ERR_FAILED")]  # the hosts refused below
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    refused = offline(page, web)

    page.goto(f"{web}/api/docs/")
    orders = page.locator('.opblock-post .opblock-summary-path[data-path="/api/v1/orders/"]')
    expect(orders).to_be_visible(timeout=15_000)
    for method, path in (("post", "/api/v1/orders/batch/"), ("delete", "/api/v1/orders/{order_id}/"),
                         ("patch", "/api/v1/orders/{order_id}/"),
                         ("get", "/api/v1/orders/")):
        expect(page.locator(f'.opblock-{method} .opblock-summary-path[data-path="{path}"]')).to_be_visible()
    assert page.locator("script[src*='cdn'], link[href*='cdn']").count() == 0
    assert refused == [], f"Swagger UI asked other hosts for {refused}"
    assert errors == []

    page.goto(f"{web}/api/redoc/")
    for operation in ("v1_orders_create", "v1_orders_batch_create", "v1_orders_partial_update", "v1_orders_destroy"):
        expect(page.locator(f'[id="tag/v1/operation/{operation}"]')).to_be_attached(timeout=15_000)
    expect(page.locator("h1").first).to_contain_text("Compute Exchange API")

    # ReDoc's bundle draws its maker's logo from their site, unconditionally, and drops the
    # image when it does not load: a missing decoration, nothing the reader needs.
    refused = [url for url in refused if url != REDOC_LOGO]
    errors = [e for e in errors if not e.startswith("Failed to load resource: net::ERR_FAILED")]
    assert refused == [], f"ReDoc asked other hosts for {refused}"
    assert errors == []
