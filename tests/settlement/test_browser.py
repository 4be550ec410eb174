"""A provider uploads a CSV of a thousand metering rows in headless Chromium: the page sends it
in parts to the running web server, the progress reaches 100 %, and the bad rows are listed
with their reasons while the others are reported."""

from decimal import Decimal

import pytest
from django.db.models import Sum
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM, browser_page  # noqa: F401 (a fixture)
from tests.factories import PASSWORD
from tests.processes import serve, stop
from tests.settlement.conftest import allocation_of
from tests.settlement.test_pages import delivering_now

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 1000


@pytest.fixture
def web(transactional_db):
    """The web server alone (``python -m exchange.serve``): uploading needs no engine."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); browser tests need it")
    process, base_url = serve(SECURE_COOKIES="0", DEBUG="1")
    yield base_url
    stop(process)


@pytest.fixture
def two_allocations(market, seller, holder):
    """Made before the server starts; the seller signs in with the production hasher's password."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    made = [allocation_of(market.trade(seller, holder, 400)) for _ in range(2)]
    delivering_now(market)
    seller.user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    seller.user.save(update_fields=["password"])
    return made


def metering_csv(a: int, b: int) -> tuple[str, dict[int, str]]:
    """``ROWS`` rows of 0.5 device-hours, alternating between the two allocations, with bad
    rows at chunk edges and in between: the CSV and {row: expected code}."""
    bad = {1: ("999999999", "1", "allocation_not_found"), 200: (str(a), "lots", "invalid"),
           201: (str(b), "-2", "invalid"), 437: ("", "1", "invalid"), 999: (str(a), "0.00001", "invalid"),
           ROWS: (str(b), "5000", "beyond_allocation")}
    lines = ["allocation_id,device_hours,note"]
    for row in range(1, ROWS + 1):
        if row in bad:
            lines.append(f"{bad[row][0]},{bad[row][1]},bad row {row}")
        else:
            lines.append(f"{a if row % 2 else b},0.5,\"hall 2, rack {row}\"")
        if row == 500:
            lines.append("")  # a blank line is skipped, not counted
    return "\r\n".join(lines) + "\r\n", {row: code for row, (_, _, code) in bad.items()}


def test_a_thousand_rows_upload_in_parts_with_progress_and_reasons(two_allocations, seller, web, browser_page,
                                                                    tmp_path):
    from settlement.models import MeterReport

    a, b = two_allocations
    text, bad = metering_csv(a.id, b.id)
    page = browser_page
    page.goto(f"{web}/accounts/sign-in/?next=/settlement/metering/upload/")
    page.fill("input[name=username]", seller.user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{web}/settlement/metering/upload/")

    # Not the CSV the page asks for: refused at once, nothing sent.
    page.set_input_files("input[name=file]", files=[{"name": "rates.csv", "mimeType": "text/csv",
                                                      "buffer": b"id;hours\n1;2\n"}])
    page.click("#metering-upload button[type=submit]")
    expect(page.locator("#upload-error")).to_contain_text("not a CSV with the header allocation_id,device_hours")
    page.set_input_files("input[name=file]", files=[{"name": "gbk.csv", "mimeType": "text/csv",
                                                      "buffer": "allocation_id,device_hours,note\n1,2,机房\n".encode("gbk")}])
    page.click("#metering-upload button[type=submit]")
    expect(page.locator("#upload-error")).to_contain_text("it is not UTF-8")

    page.set_input_files("input[name=file]", files=[{"name": "metering.csv", "mimeType": "text/csv",
                                                      "buffer": text.encode()}])
    page.click("#metering-upload button[type=submit]")
    expect(page.locator("#upload-progress-text")).to_contain_text(f"{ROWS} / {ROWS} rows · 100 %", timeout=180_000)
    expect(page.locator("#upload-error")).to_be_hidden()
    assert page.locator("#upload-bar").evaluate("bar => bar.value === bar.max")
    expect(page.locator("#count-reported")).to_have_text(str(ROWS - len(bad)))
    expect(page.locator("#count-refused")).to_have_text(str(len(bad)))
    expect(page.locator("#metering-results tbody tr")).to_have_count(ROWS)

    page.check("#only-refused")
    refused = page.locator("#metering-results tbody tr.refused")
    expect(refused).to_have_count(len(bad))
    cells = [[cell.strip() for cell in row] for row in refused.evaluate_all(
        "rows => rows.map(r => Array.from(r.cells, c => c.textContent))")]
    assert [(int(row), code) for row, _, code, _ in cells] == sorted(bad.items())
    reasons = {int(row): reason for row, _, _, reason in cells}
    assert "No allocation 999999999 of yours" in reasons[1]
    assert "'lots' is not a number of device-hours" in reasons[200]
    assert "above 0" in reasons[201] and "'' is not an allocation id" in reasons[437]
    assert "four decimal places" in reasons[999] and "delivers at most 400 SCU·h" in reasons[ROWS]
    expect(page.locator("#metering-results tbody tr.ok").first).to_be_hidden()
    page.screenshot(path=str(tmp_path / "metering-upload.png"), full_page=False)

    reports = MeterReport.objects.filter(source="csv")
    assert reports.count() == ROWS - len(bad)
    assert reports.aggregate(total=Sum("device_hours"))["total"] == Decimal("0.5") * (ROWS - len(bad))
    assert reports.filter(note="hall 2, rack 2").exists()  # a quoted comma stays in the note
