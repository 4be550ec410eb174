"""The console's instrument pages: regulators read and act, everyone else is kept out; every
action needs a reason and is refused with a 4xx page and nothing written when it cannot be done."""

import pytest

from exchange.models import Instrument
from supervision.models import SupervisionAction
from tests.exchange.conftest import fee_tier, make_instrument  # noqa: F401
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
PAGES = ["/supervision/instruments/", "/supervision/instruments/classes/", "/supervision/instruments/hubs/"]


@pytest.fixture
def instruments(fee_tier):
    return [make_instrument(class_code="AI24", hub_code="NX"), make_instrument(class_code="AI80", hub_code="GBA")]


def state(instrument) -> str:
    return Instrument.objects.get(pk=instrument.pk).state


def test_pages_are_for_regulators_only(client, instruments, buyer, provider):
    operator = MembershipFactory(organisation__kind="operator", role="viewer")
    pages = [*PAGES, f"/supervision/instruments/{instruments[0].code}/"]
    for url in pages:
        assert client.get(url).status_code == 302, url  # sign in first
    response = client.post("/supervision/instruments/actions/", {"action": "halt", "scope": "market", "reason": "x"})
    assert response.status_code == 302
    for member in (buyer, provider, operator):
        client.force_login(member.user)
        for url in pages:
            response = client.get(url)
            assert response.status_code == 403 and b"for the regulator" in response.content, (url, member)
        response = client.post("/supervision/instruments/actions/", {"action": "halt", "scope": "market", "reason": "x"})
        assert response.status_code == 403
    assert set(Instrument.objects.values_list("state", flat=True)) == {"continuous"}
    assert not SupervisionAction.objects.exists()


def test_the_regulator_reads_the_lists_and_an_instrument(client, regulator, instruments):
    client.force_login(regulator.user)
    page = client.get("/supervision/instruments/?class=AI24").content.decode()
    assert instruments[0].code in page and instruments[1].code not in page
    assert 'data-field="state">Continuous trading' in page and "Open orders" in page
    assert client.get("/supervision/instruments/?state=sleeping").status_code == 400
    assert client.get("/supervision/instruments/?day=someday").status_code == 400
    assert "AI80" in client.get("/supervision/instruments/classes/").content.decode()
    assert "GBA" in client.get("/supervision/instruments/hubs/").content.decode()
    detail = client.get(f"/supervision/instruments/{instruments[0].code}/").content.decode()
    assert 'id="halt"' in detail and 'id="band"' in detail and 'id="resume"' not in detail
    assert client.get("/supervision/instruments/NOPE.NX.2030-01-01/").status_code == 404
    assert client.get("/supervision/instruments/actions/").status_code == 405


def test_halting_and_resuming_from_the_pages(client, regulator, instruments):
    client.force_login(regulator.user)
    nx24, gba80 = instruments
    back = f"/supervision/instruments/{nx24.code}/"
    response = client.post("/supervision/instruments/actions/", {
        "action": "halt", "scope": "instrument", "code": nx24.code, "orders": "cancel", "reason": "Test halt",
        "next": back}, follow=True)
    assert response.redirect_chain == [(back, 302)]
    assert f"Halted: {nx24.code}. 0 open orders are being cancelled." in response.content.decode()
    assert state(nx24) == "halted" and 'id="resume"' in response.content.decode()
    # Halted: the halt form only cancels what is left (a plain halt again would change nothing).
    assert '<input type="hidden" name="orders" value="cancel">' in response.content.decode()
    assert "Test halt" in response.content.decode()  # the instrument's history

    response = client.post("/supervision/instruments/actions/", {
        "action": "halt", "scope": "hub", "code": "GBA", "reason": "Hub incident", "next": "https://elsewhere.example/"})
    assert response.status_code == 302 and response["Location"] == "/supervision/instruments/"  # only back to this site
    assert state(gba80) == "halted"
    response = client.post("/supervision/instruments/actions/", {
        "action": "resume", "scope": "market", "reason": "All clear", "auction_seconds": "45"}, follow=True)
    assert "Resuming through a call auction" in response.content.decode()
    assert {state(nx24), state(gba80)} == {"auction"}
    assert list(SupervisionAction.objects.order_by("id").values_list("action", flat=True)) == [
        "instrument.halt", "instrument.halt", "instrument.resume"]
    # The history of an instrument includes the market-wide action that resumed it.
    assert "All clear" in client.get(back).content.decode()


def test_the_band_from_the_page(client, regulator, instruments):
    client.force_login(regulator.user)
    response = client.post("/supervision/instruments/actions/", {
        "action": "band", "scope": "instrument", "code": instruments[0].code, "band_bps": "250", "reason": "Calmer"},
        follow=True)
    assert "set to ±250 bp" in response.content.decode()
    assert Instrument.objects.get(pk=instruments[0].pk).band_bps == 250


@pytest.mark.parametrize("form, status, code", [
    ({}, 400, "invalid"),
    ({"action": "halt", "scope": "instrument", "code": "X"}, 400, "invalid"),  # no reason
    ({"action": "halt", "scope": "galaxy", "reason": "x"}, 400, "invalid"),
    ({"action": "halt", "scope": "class", "reason": "x"}, 400, "invalid"),  # which class?
    ({"action": "halt", "scope": "class", "code": "NOPE", "reason": "x"}, 404, "not_found"),
    ({"action": "halt", "scope": "market", "reason": "x", "orders": "sometimes"}, 400, "invalid"),
    ({"action": "band", "scope": "market", "reason": "x", "band_bps": "100"}, 400, "invalid"),
    ({"action": "band", "scope": "instrument", "code": "{code}", "reason": "x", "band_bps": "wide"}, 400, "invalid"),
    ({"action": "band", "scope": "instrument", "code": "{code}", "reason": "x", "band_bps": "0"}, 400, "invalid"),
    ({"action": "resume", "scope": "instrument", "code": "{code}", "reason": "x"}, 409, "not_halted"),
    ({"action": "open", "scope": "instrument", "code": "{code}", "reason": "x"}, 409, "wrong_state"),
])
def test_refused_actions_show_why_with_a_4xx_and_change_nothing(client, regulator, instruments, form, status, code):
    client.force_login(regulator.user)
    form = {k: v.format(code=instruments[0].code) for k, v in form.items()}
    response = client.post("/supervision/instruments/actions/", form)
    assert response.status_code == status and f"<code>{code}</code>" in response.content.decode()
    assert "Nothing was changed." in response.content.decode()
    assert not SupervisionAction.objects.exists()
    assert set(Instrument.objects.values_list("state", "band_bps")) == {("continuous", 1000)}


def test_the_console_pages_in_chinese(client, regulator, instruments):
    client.force_login(regulator.user)
    client.cookies["django_language"] = "zh-hans"
    page = client.get(f"/supervision/instruments/{instruments[0].code}/").content.decode()
    assert "连续交易" in page and "暂停交易" in page
