"""The settlement pages through the Django test client: who sees what, what each form does,
and that refused input shows its reason and writes nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.access import actor_from_user
from exchange.models import Instrument
from settlement.models import Delivery, Dispute, MeterReport
from settlement.services import delivery_start, dispute_open, metering_report
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import MembershipFactory
from tests.settlement.conftest import Market, allocation_of, funded

pytestmark = pytest.mark.django_db

SECRET = "user: alice / key: s3cret-key-9"


def delivering_now(market: Market) -> None:
    """Put the market's delivery window around now (it began an hour ago)."""
    now = timezone.now()
    Instrument.objects.filter(pk=market.instrument.pk).update(
        delivery_start=now - timedelta(hours=1), delivery_end=now + timedelta(hours=23),
        gate_closure_at=now - timedelta(hours=3), state=Instrument.State.CLOSED)
    market.instrument.refresh_from_db()


@pytest.fixture
def allocations(market, seller, holder):
    """Four allocations of ``holder`` from ``seller``, delivering now: to start, delivering
    (with credentials), metered, and disputed."""
    made = {name: allocation_of(market.trade(seller, holder, 100)) for name in ("to_start", "delivering", "metered",
                                                                                "disputed")}
    delivering_now(market)
    provider, buyer = actor_from_user(seller.user), actor_from_user(holder.user)
    delivery_start(actor=provider, allocation_id=made["delivering"].id, endpoint="ssh://gpu.example.cn:22",
                   credentials=SECRET)
    metering_report(actor=provider, allocation_id=made["metered"].id, device_hours="40")
    metering_report(actor=provider, allocation_id=made["disputed"].id, device_hours="90")
    dispute_open(actor=buyer, allocation_id=made["disputed"].id, reason="Half the nodes were down")
    return made


@pytest.fixture
def settled(market, holder, sla_schedule):
    """An allocation of another instrument whose window ended, delivered 90 of 100: settled."""
    past = Market(make_instrument(days_ahead=3))
    provider = MembershipFactory(organisation__kind="provider", role="provider_admin")
    list_capacity(organisation=provider.organisation, instrument=past.instrument, scu_h=500)
    allocation = allocation_of(past.trade(provider, holder, 100))
    past.end_window()
    metering_report(actor=actor_from_user(provider.user), allocation_id=allocation.id, device_hours="90",
                    now=past.during)
    assert past.settle() == 1
    return provider, allocation


def page(client, membership, url, **params):
    client.force_login(membership.user)
    return client.get(url, params)


# --- the provider's desk ---------------------------------------------------------------------

def test_the_desk_lists_each_allocation_with_its_state(client, seller, allocations):
    response = page(client, seller, "/settlement/deliveries/")
    html = response.content.decode()
    assert response.status_code == 200
    for allocation in allocations.values():
        assert f'id="allocation-{allocation.id}"' in html
    assert "ssh://gpu.example.cn:22" in html and "Half the nodes were down" in html
    assert "40 device-hours" in html
    assert 'aria-current="page">All<span class="count">4</span>' in html
    metered = page(client, seller, "/settlement/deliveries/", state="metered").content.decode()
    assert f'id="allocation-{allocations["metered"].id}"' in metered
    assert f'id="allocation-{allocations["to_start"].id}"' not in metered
    disputed = page(client, seller, "/settlement/deliveries/", state="disputed").content.decode()
    assert [a.id for a in allocations.values() if f'id="allocation-{a.id}"' in disputed] == [allocations["disputed"].id]
    assert page(client, seller, "/settlement/deliveries/", state="lost").status_code == 400


def test_the_desk_paginates_within_its_filter(client, seller, allocations, monkeypatch):
    from settlement import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    first = page(client, seller, "/settlement/deliveries/").content.decode()
    assert first.count('class="card allocation"') == 2 and "Page 1 of 2" in first and "?page=2" in first
    second = page(client, seller, "/settlement/deliveries/", page=2).content.decode()
    assert second.count('class="card allocation"') == 2 and "Page 2 of 2" in second
    metered = page(client, seller, "/settlement/deliveries/", state="metered").content.decode()
    assert metered.count('class="card allocation"') == 1 and "Page 1 of" not in metered  # filtered, then paged


def test_the_desk_never_shows_credentials(client, seller, allocations):
    html = page(client, seller, "/settlement/deliveries/").content.decode()
    assert "s3cret-key-9" not in html and Delivery.objects.get().credentials_encrypted not in html


def test_the_desk_is_for_providers_and_needs_sign_in(client, holder, allocations):
    assert client.get("/settlement/deliveries/").status_code == 302
    response = page(client, holder, "/settlement/deliveries/")
    assert response.status_code == 403 and "not a provider organisation" in response.content.decode()
    other = MembershipFactory(organisation__kind="provider", role="provider_admin")
    html = page(client, other, "/settlement/deliveries/").content.decode()
    assert "allocation-" not in html and "Nothing to deliver yet" in html


def test_starting_delivery_from_the_desk(client, seller, holder, allocations):
    allocation = allocations["to_start"]
    client.force_login(seller.user)
    response = client.post(f"/settlement/deliveries/{allocation.id}/start/?state=to_start",
                           {"endpoint": "https://jupyter.example.cn/a1", "credentials": "token: tk-77"})
    assert response.status_code == 302
    assert response["Location"] == f"/settlement/deliveries/?state=to_start#allocation-{allocation.id}"
    delivery = Delivery.objects.get(pk=allocation.id)
    assert delivery.endpoint == "https://jupyter.example.cn/a1" and "tk-77" not in delivery.credentials_encrypted
    assert "tk-77" not in client.get("/settlement/deliveries/").content.decode()
    assert "tk-77" in page(client, holder, "/settlement/capacity/").content.decode()


@pytest.mark.parametrize("form, data, status, text", [
    ("start", {"endpoint": " ", "credentials": "typed-secret"}, 400, "Give the endpoint"),
    ("start", {"endpoint": "x" * 301, "credentials": "typed-secret"}, 400, "at most 300 characters"),
    ("metering", {"device_hours": "lots", "note": "kept note"}, 400, "is not a number of device-hours"),
    ("metering", {"device_hours": "-3"}, 400, "must be above 0"),
    ("metering", {"device_hours": "1.00001"}, 400, "at most four decimal places"),
    ("metering", {"device_hours": "101", "note": "kept note"}, 422, "delivers at most 100 SCU·h"),
])
def test_bad_input_on_the_desk_shows_the_error_and_writes_nothing(client, seller, allocations, form, data, status,
                                                                   text):
    allocation = allocations["to_start"]
    client.force_login(seller.user)
    before = (Delivery.objects.count(), MeterReport.objects.count())
    response = client.post(f"/settlement/deliveries/{allocation.id}/{form}/", data)
    html = response.content.decode()
    assert response.status_code == status
    assert text in html.replace("&#x27;", "'") and f"Allocation {allocation.id}:" in html
    assert (Delivery.objects.count(), MeterReport.objects.count()) == before
    assert "typed-secret" not in html  # credentials are never shown back
    if "note" in data:
        assert 'value="kept note"' in html  # what else was typed is kept


def test_another_providers_allocation_is_not_found(client, allocations):
    other = MembershipFactory(organisation__kind="provider", role="provider_admin")
    allocation = allocations["to_start"]
    client.force_login(other.user)
    response = client.post(f"/settlement/deliveries/{allocation.id}/metering/", {"device_hours": "5"})
    assert response.status_code == 404 and f"No allocation {allocation.id} of yours" in response.content.decode()
    response = client.post(f"/settlement/deliveries/{allocation.id}/start/", {"endpoint": "ssh://x"})
    assert response.status_code == 404
    assert not MeterReport.objects.filter(allocation=allocation).exists()
    assert not Delivery.objects.filter(pk=allocation.id).exists()


def test_metering_from_the_desk_adds_up(client, seller, allocations):
    allocation = allocations["to_start"]
    client.force_login(seller.user)
    for hours in ("10", "5.5"):
        assert client.post(f"/settlement/deliveries/{allocation.id}/metering/", {"device_hours": hours}).status_code == 302
    assert sorted(MeterReport.objects.filter(allocation=allocation).values_list("source", flat=True)) == ["page", "page"]
    html = client.get("/settlement/deliveries/", follow=True).content.decode()
    assert "15.5 device-hours" in html


# --- the holder's page -----------------------------------------------------------------------

def test_only_the_holders_members_see_the_credentials(client, seller, holder, allocations):
    html = page(client, holder, "/settlement/capacity/").content.decode()
    assert SECRET in html
    colleague = MembershipFactory(organisation=holder.organisation, role="viewer")
    assert "s3cret-key-9" in page(client, colleague, "/settlement/capacity/").content.decode()
    for outsider in (seller, MembershipFactory(organisation__kind="buyer"),
                     MembershipFactory(organisation__kind="regulator", role="regulator")):
        for url in ("/settlement/capacity/", "/settlement/deliveries/"):
            assert "s3cret-key-9" not in page(client, outsider, url).content.decode()


def test_another_organisation_sees_none_of_the_holders_allocations(client, holder, allocations):
    html = page(client, MembershipFactory(organisation__kind="buyer"), "/settlement/capacity/").content.decode()
    assert "allocation-" not in html and "You hold no capacity yet" in html
    assert page(client, holder, "/settlement/capacity/").content.decode().count('class="card allocation"') == 4


def test_the_holder_answers_whether_access_works(client, seller, holder, allocations):
    delivering, to_start = allocations["delivering"], allocations["to_start"]
    client.force_login(holder.user)
    html = client.get("/settlement/capacity/").content.decode()
    assert html.count("Access works") == 1  # only where delivery started
    assert client.post(f"/settlement/capacity/{delivering.id}/access/", {"working": "yes"}).status_code == 302
    assert Delivery.objects.get(pk=delivering.id).state == Delivery.State.CONFIRMED
    response = client.post(f"/settlement/capacity/{to_start.id}/access/", {"working": "yes"})
    assert response.status_code == 409 and "has not started delivering" in response.content.decode()
    assert not Delivery.objects.filter(pk=to_start.id).exists()
    response = client.post(f"/settlement/capacity/{to_start.id}/access/", {"working": "no", "note": "x" * 501})
    assert response.status_code == 400 and not Delivery.objects.filter(pk=to_start.id).exists()
    client.post(f"/settlement/capacity/{to_start.id}/access/", {"working": "no", "note": "No host answers"})
    assert Delivery.objects.get(pk=to_start.id).state == Delivery.State.MISSING
    assert "No host answers" in page(client, seller, "/settlement/deliveries/").content.decode()


def test_the_holder_disputes_while_the_window_is_open(client, seller, holder, allocations):
    allocation = allocations["metered"]
    client.force_login(holder.user)
    response = client.post(f"/settlement/capacity/{allocation.id}/dispute/", {"reason": "  "})
    assert response.status_code == 400 and "Say what is wrong" in response.content.decode()
    assert not Dispute.objects.filter(allocation=allocation).exists()
    assert client.post(f"/settlement/capacity/{allocation.id}/dispute/", {"reason": "GPUs idle"}).status_code == 302
    assert Dispute.objects.get(allocation=allocation).state == Dispute.State.OPEN
    response = client.post(f"/settlement/capacity/{allocation.id}/dispute/", {"reason": "again"})
    assert response.status_code == 409 and Dispute.objects.filter(allocation=allocation).count() == 1
    # The seller may not dispute, and another buyer does not find the allocation.
    client.force_login(seller.user)
    assert client.post(f"/settlement/capacity/{allocation.id}/dispute/", {"reason": "x"}).status_code == 403
    client.force_login(MembershipFactory(organisation__kind="buyer").user)
    assert client.post(f"/settlement/capacity/{allocation.id}/dispute/", {"reason": "x"}).status_code == 404


def test_a_settled_allocation_shows_its_result(client, holder, settled):
    provider, allocation = settled
    html = page(client, holder, "/settlement/capacity/").content.decode()
    # 90 of 100 SCU·h at 20.00: 1,800.00 paid, 200.00 refunded, below 95 % → a credit of all 2,000.00.
    for text in ("Settled", "90 SCU·h · 1800.00 CNY", "10 SCU·h", "200.00 CNY", "2000.00 CNY (100.00 %)"):
        assert text in html, text
    assert "Open a dispute" not in html and "Access missing" not in html
    desk = page(client, provider, "/settlement/deliveries/", state="settled").content.decode()
    assert f'id="allocation-{allocation.id}"' in desk and "Paid out to owners" in desk


# --- metering upload -------------------------------------------------------------------------

def csv_file(text: str, name: str = "metering.csv"):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_a_csv_posted_without_javascript_reports_each_row(client, seller, allocations):
    a, b = allocations["to_start"], allocations["delivering"]
    client.force_login(seller.user)
    text = f"allocation_id,device_hours,note\n{a.id},12.5,rack 4\n\n{b.id},abc\n999999,1\n{b.id},3\n"
    response = client.post("/settlement/metering/upload/", {"file": csv_file(text)})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="count-reported">2<' in html and 'id="count-refused">2<' in html
    assert "&#x27;abc&#x27; is not a number" in html and "allocation_not_found" in html
    assert '<td class="num">3</td><td>999999</td>' in html  # blank lines are not counted
    assert sorted(MeterReport.objects.filter(source="csv").values_list("allocation_id", "device_hours")) == sorted(
        [(a.id, 12.5), (b.id, 3)])


@pytest.mark.parametrize("content, text", [
    (b"id,hours\n1,2\n", "The first line must be the header allocation_id,device_hours"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This is not a CSV text file"),
    (b"allocation_id,device_hours\n1,\x00\n", "holds binary data"),
])
def test_a_file_that_is_not_the_csv_is_refused_and_nothing_written(client, seller, allocations, content, text):
    client.force_login(seller.user)
    before = MeterReport.objects.count()
    response = client.post("/settlement/metering/upload/",
                           {"file": SimpleUploadedFile("x.csv", content, content_type="text/csv")})
    assert response.status_code == 400 and text in response.content.decode()
    assert MeterReport.objects.count() == before


def test_the_upload_is_for_providers(client, holder):
    assert page(client, holder, "/settlement/metering/upload/").status_code == 403
    response = client.post("/settlement/metering/upload/chunk/", {"text": "x"}, content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "not_a_provider"
    client.logout()
    response = client.post("/settlement/metering/upload/chunk/", {}, content_type="application/json")
    assert response.status_code == 401


def test_the_chunk_view_numbers_rows_from_first_row(client, seller, allocations):
    a = allocations["to_start"]
    client.force_login(seller.user)
    body = {"text": f"allocation_id,device_hours\n{a.id},1\n{a.id},0\n", "first_row": 401}
    response = client.post("/settlement/metering/upload/chunk/", body, content_type="application/json")
    data = response.json()
    assert response.status_code == 200 and (data["reported"], data["refused"]) == (1, 1)
    assert [(r["row"], r["ok"]) for r in data["results"]] == [(401, True), (402, False)]
    assert data["results"][1]["code"] == "invalid"


@pytest.mark.parametrize("body, code", [
    ({"text": "allocation_id;device_hours\n1;2\n", "first_row": 1}, "invalid"),
    ({"text": "allocation_id,device_hours\n", "first_row": 0}, "invalid"),
    ({"text": "allocation_id,device_hours\n", "first_row": "1"}, "invalid"),
    ({"text": 5, "first_row": 1}, "invalid"),
    ([1, 2], "invalid"),
])
def test_the_chunk_view_refuses_bad_parts(client, seller, allocations, body, code):
    client.force_login(seller.user)
    response = client.post("/settlement/metering/upload/chunk/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == code
    assert not MeterReport.objects.filter(source="csv").exists()


# --- the SLA schedule, navigation, language, queries -----------------------------------------

def test_the_sla_schedule_is_public(client, sla_schedule):
    html = client.get("/settlement/sla/").content.decode()
    for text in ("99.90 % or more", "from 99.00 % to below 99.90 %", "10.00 %", "from 95.00 % to below 99.00 %",
                 "25.00 %", "below 95.00 %", "100.00 %"):
        assert text in html, text


def test_navigation_names_the_page_for_the_organisation(client, seller, holder):
    provider_html = page(client, seller, "/").content.decode()
    assert 'href="/settlement/deliveries/"' in provider_html and 'href="/settlement/capacity/"' not in provider_html
    buyer_html = page(client, holder, "/").content.decode()
    assert 'href="/settlement/capacity/"' in buyer_html and 'href="/settlement/deliveries/"' not in buyer_html


def test_pages_speak_simplified_chinese(client, seller, holder, allocations):
    client.force_login(seller.user)
    assert "交付管理" in client.get("/settlement/deliveries/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "上传计量" in client.get("/settlement/metering/upload/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "服务等级" in client.get("/settlement/sla/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    client.force_login(holder.user)
    assert "访问正常" in client.get("/settlement/capacity/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()


@pytest.fixture
def more(market, seller, holder):
    """Four more allocations, delivered and metered (made while the market still trades)."""
    provider = actor_from_user(seller.user)
    for _ in range(4):
        allocation = allocation_of(market.trade(seller, holder, 10))
        delivery_start(actor=provider, allocation_id=allocation.id, endpoint="ssh://more", credentials="k")
        metering_report(actor=provider, allocation_id=allocation.id, device_hours="1", now=market.during)


def test_the_list_pages_use_a_fixed_number_of_queries(client, seller, holder, more, allocations, settled,
                                                      django_assert_max_num_queries):
    client.force_login(seller.user)
    with django_assert_max_num_queries(8):
        assert client.get("/settlement/deliveries/").content.decode().count('class="card allocation"') == 8
    client.force_login(holder.user)
    with django_assert_max_num_queries(7):
        assert client.get("/settlement/capacity/").content.decode().count('class="card allocation"') == 9
