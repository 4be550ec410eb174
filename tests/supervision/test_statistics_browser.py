"""The statistics page in headless Chromium: the regulator signs in, every chart is drawn by the
vendored uPlot without a script error, and a CSV link downloads the figures."""

import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM, browser_page  # noqa: F401 (a fixture)
from tests.exchange.conftest import fee_tier  # noqa: F401 (a fixture)
from tests.factories import PASSWORD
from tests.processes import serve, stop
from tests.settlement.conftest import sla_schedule  # noqa: F401 (a fixture)
from tests.supervision.statistics_market import statistics_market_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web(transactional_db):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    process, base_url = serve(SECURE_COOKIES="0", DEBUG="1")
    yield base_url
    stop(process)


def test_the_regulator_sees_every_chart_and_downloads_a_csv(fee_tier, sla_schedule, regulator, web,  # noqa: F811
                                                            browser_page, tmp_path):
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    market = statistics_market_make(regulator)
    regulator.user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    regulator.user.save(update_fields=["password"])
    page = browser_page
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{web}/accounts/sign-in/?next=/supervision/statistics/")
    page.fill("input[name=username]", regulator.user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{web}/supervision/statistics/")
    first = min(market.delivery_day, timezone.localtime(market.trades["t1"].created_at).date())
    page.goto(f"{web}/supervision/statistics/?from={first}&interval=day")
    charts = page.locator("[data-chart] .uplot")
    charts.first.wait_for()
    assert charts.count() == 6
    # Each chart drew on its canvas (not a blank one) and names its series in the legend.
    for n in range(6):
        assert charts.nth(n).locator("canvas").evaluate(
            "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v !== 0)")
    legend = page.locator("[data-chart=price_index] .u-legend").inner_text()
    assert "AI80·NX" in legend and "AI80·YRD" in legend
    # The legend follows the cursor: over the first provider's bars it shows that provider's exact rates.
    over = page.locator("[data-chart=providers] .u-over")
    box = over.bounding_box()
    rows = sorted([market.members["P1"].organisation.name, market.members["P2"].organisation.name])
    over.hover(position={"x": box["width"] / (2 * len(rows)), "y": box["height"] / 2})
    legend = page.locator("[data-chart=providers] .u-legend").inner_text()
    assert rows[0] in legend and ("95.38 %" in legend or "50.00 %" in legend), legend
    assert errors == []
    page.screenshot(path=os.environ.get("STATISTICS_SCREENSHOT") or str(tmp_path / "statistics.png"), full_page=True)

    with page.expect_download() as download:
        page.locator("#providers a[download]").click()
    text = open(download.value.path(), encoding="utf-8-sig").read()
    assert text.splitlines()[0].startswith("provider_id,provider,allocated_scu_h") and "95.38" in text

    # In Chinese, today alone: volume by the hour, the legend's times in China time.
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": web}])
    trade_time = timezone.localtime(market.trades["t1"].created_at)  # China time
    today = trade_time.date()
    page.goto(f"{web}/supervision/statistics/?from={today}")
    expect(page.locator("h1")).to_have_text("市场统计")
    page.locator("[data-chart=volume] .uplot").wait_for()
    over = page.locator("[data-chart=volume] .u-over")
    box = over.bounding_box()
    over.hover(position={"x": box["width"] * (trade_time.hour * 60 + trade_time.minute) / 1440, "y": box["height"] / 2})
    legend = page.locator("[data-chart=volume] .u-legend").inner_text()
    assert "成交量（SCU·h）" in page.locator("[data-chart=volume]").inner_text()
    assert f"{today} {trade_time.hour:02d}:00" in legend, legend
    assert errors == []
    page.screenshot(path=(os.environ.get("STATISTICS_SCREENSHOT") or str(tmp_path / "statistics.png")).replace(
        ".png", "-zh.png"), full_page=False)
