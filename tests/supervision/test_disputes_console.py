"""Disputes in the console: the queue (open first, with allocation, parties, metering and
reason) and the regulator's decision, as a page and as the API. The decision is settled by
settlement.services.dispute_resolve, recorded as the regulator's action and shown on every
console; refusals write nothing; and no console page or answer carries the holder's
delivery credentials."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.access import actor_from_user
from exchange import ledger
from exchange.models import FeeTier
from settlement.models import Dispute, MeterReport
from settlement.services import delivery_start
from supervision.models import SupervisionAction
from tests.settlement.parties import allocation_make, dispute_make
from tests.supervision.kyc_helpers import (
    API, api_clients, listen, operator_member, page_clients, post, received, writes,
)

pytestmark = pytest.mark.django_db
SECRET = "ssh key sk-51f0-NEVER-IN-THE-CONSOLE"


@pytest.fixture
def world(buyer, provider, attestor, regulator):
    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5,
                                                                 is_default=True))
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    allocation = allocation_make(provider=provider, buyer=buyer, qty=5)
    delivery_start(actor=actor_from_user(provider.user), allocation_id=allocation.pk,
                   endpoint="ssh://gpu-3.nx.example:22", credentials=SECRET)
    reports = [MeterReport.objects.create(allocation=allocation, device_hours=Decimal(h), note=note,
                                          reported_by=provider.user)
               for h, note in (("2.5", "first half"), ("1.25", "node 7 down"))]
    dispute = Dispute.objects.create(allocation=allocation, report=reports[1], opened_by=buyer.user,
                                     reason="Node 7 was down all afternoon, not two hours.")
    members = {"buyer": buyer, "provider": provider, "attestor": attestor, "operator": operator_member()}
    return {"members": members, "allocation": allocation, "dispute": dispute, "reports": reports,
            "api": api_clients(members, regulator), "pages": page_clients(members, regulator)}


def test_only_the_regulator_sees_the_queue_and_only_with_supervise_decides(world):
    dispute, api, pages = world["dispute"], world["api"], world["pages"]
    decision = (f"disputes/{dispute.pk}/decision/", {"outcome": "uphold", "note": "Metering matches the logs."})
    before = writes()
    for name in ("buyer", "provider", "attestor", "operator"):
        assert api[name].get(API + "disputes/").status_code == 403, name
        assert post(api[name], *decision).status_code == 403, name
        assert pages[name].get("/supervision/disputes/").status_code == 403, name
        assert pages[name].post(f"/supervision/disputes/{dispute.pk}/resolve/", decision[1]).status_code == 403
    assert api["anonymous"].get(API + "disputes/").status_code == 401
    assert post(api["anonymous"], *decision).status_code == 401
    assert pages["anonymous"].get("/supervision/disputes/").status_code == 302
    assert pages["anonymous"].post(f"/supervision/disputes/{dispute.pk}/resolve/", decision[1]).status_code == 302
    assert api["regulator_read"].get(API + "disputes/").status_code == 200
    response = post(api["regulator_read"], *decision)
    assert response.status_code == 403 and response.json()["code"] == "scope_missing"
    assert writes() == before
    assert post(api["regulator"], *decision).status_code == 200


def test_the_queue_shows_open_disputes_first_with_what_a_decision_needs(world, provider, buyer):
    other = allocation_make(provider=provider, buyer=buyer, days_ahead=4, qty=2)
    decided = Dispute.objects.create(allocation=other, opened_by=buyer.user, reason="Slow disks.",
                                     state=Dispute.State.UPHELD, resolution_note="Within the SLA.")
    later = dispute_make(other, by=buyer)
    listed = world["api"]["regulator"].get(API + "disputes/").json()["results"]
    assert [d["id"] for d in listed] == [world["dispute"].pk, later.pk, decided.pk]
    first = listed[0]
    assert first["reason"] == "Node 7 was down all afternoon, not two hours."
    assert first["report_id"] == world["reports"][1].pk
    assert first["parties"]["holder"]["id"] == buyer.organisation_id
    assert first["parties"]["provider"]["id"] == first["parties"]["seller"]["id"] == provider.organisation_id
    assert [r["device_hours"] for r in first["metering"]["reports"]] == ["2.5000", "1.2500"]
    assert first["metering"]["metered_device_hours"] == "3.7500"
    assert first["allocation"]["scu_h"] == 5 and first["allocation"]["instrument"]
    only_open = world["api"]["regulator"].get(API + "disputes/", {"state": "open"}).json()["results"]
    assert [d["id"] for d in only_open] == [world["dispute"].pk, later.pk]
    page = world["pages"]["regulator"].get("/supervision/disputes/").content.decode()
    assert page.index(f'id="dispute-{world["dispute"].pk}"') < page.index(f'id="dispute-{decided.pk}"')
    for text in ("Node 7 was down all afternoon", "node 7 down", buyer.organisation.name, provider.organisation.name,
                 "Within the SLA."):
        assert text in page


def test_upholding_on_the_page_settles_the_dispute_and_records_the_decision(
        world, regulator, django_capture_on_commit_callbacks):
    dispute, allocation = world["dispute"], world["allocation"]
    parties = listen(organisations=[allocation.holder_id, world["members"]["provider"].organisation_id], console=False)
    console = listen()
    with django_capture_on_commit_callbacks(execute=True):
        response = world["pages"]["regulator"].post(f"/supervision/disputes/{dispute.pk}/resolve/",
                                                    {"outcome": "uphold", "note": "Logs confirm 3.75 h."})
    assert response.status_code == 302 and response["Location"].endswith(f"#dispute-{dispute.pk}")
    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution_note, dispute.resolved_by_id) == (
        Dispute.State.UPHELD, "Logs confirm 3.75 h.", regulator.user_id)
    record = SupervisionAction.objects.get(action="dispute.resolve")
    assert (record.reason, record.organisation_id, record.details["dispute_id"], record.details["outcome"]) == (
        "Logs confirm 3.75 h.", allocation.holder_id, dispute.pk, "upheld")
    assert {e["type"] for e in received(parties)} == {"dispute.resolved"}
    (shown,) = received(console)
    assert (shown["type"], shown["dispute_id"], shown["outcome"], shown["action_id"]) == (
        "dispute.resolved", dispute.pk, "upheld", record.pk)
    followed = world["pages"]["regulator"].get("/supervision/disputes/").content.decode()
    assert "Logs confirm 3.75 h." in followed and f"/supervision/disputes/{dispute.pk}/resolve/" not in followed


def test_adjusting_through_the_api_sets_what_counts_as_delivered(world):
    dispute = world["dispute"]
    response = post(world["api"]["regulator"], f"disputes/{dispute.pk}/decision/",
                    {"outcome": "adjust", "delivered_device_hours": "3", "note": "Node 7 down six hours."}, key="adj")
    assert response.status_code == 200, response.json()
    assert (response.json()["state"], response.json()["delivered_device_hours"]) == ("adjusted", "3.0000")
    again = post(world["api"]["regulator"], f"disputes/{dispute.pk}/decision/",
                 {"outcome": "adjust", "delivered_device_hours": "3", "note": "Node 7 down six hours."}, key="adj")
    assert again.json() == response.json() and again["Idempotent-Replay"] == "true"
    assert SupervisionAction.objects.filter(action="dispute.resolve").count() == 1


@pytest.mark.parametrize("body, http, code, field", [
    ({"outcome": "adjust", "note": "How much?"}, 400, "invalid", "delivered_device_hours"),
    ({"outcome": "adjust", "delivered_device_hours": "ten", "note": "x"}, 400, "invalid", "delivered_device_hours"),
    ({"outcome": "adjust", "delivered_device_hours": 2.5, "note": "A float."}, 400, "invalid", "delivered_device_hours"),
    ({"outcome": "adjust", "delivered_device_hours": "99999", "note": "Too much."}, 422, "beyond_allocation", None),
    ({"outcome": "uphold"}, 400, "invalid", "note"),
    ({"outcome": "uphold", "note": "   "}, 400, "invalid", "note"),
    ({"outcome": "dismiss", "note": "No."}, 400, "invalid", "outcome"),
])
def test_a_refused_decision_says_why_and_writes_nothing(world, body, http, code, field):
    before = writes()
    response = post(world["api"]["regulator"], f"disputes/{world['dispute'].pk}/decision/", body, key="bad")
    assert response.status_code == http and response.json()["code"] == code, response.json()
    if field:
        assert field in response.json()["fields"]
    assert writes() == before
    if all(isinstance(v, str) for v in body.values()):  # a form sends text only
        page = world["pages"]["regulator"].post(f"/supervision/disputes/{world['dispute'].pk}/resolve/", body)
        assert page.status_code == http and 'class="errors" role="alert"' in page.content.decode()
        assert writes() == before


def test_a_decided_or_unknown_dispute_is_refused(world):
    client = world["api"]["regulator"]
    assert post(client, f"disputes/{world['dispute'].pk}/decision/", {"outcome": "uphold", "note": "Fine."}).status_code == 200
    before = writes()
    again = post(client, f"disputes/{world['dispute'].pk}/decision/", {"outcome": "uphold", "note": "Fine again."})
    assert (again.status_code, again.json()["code"]) == (409, "dispute_resolved")
    missing = post(client, f"disputes/{2**62}/decision/", {"outcome": "uphold", "note": "Nothing."})
    assert (missing.status_code, missing.json()["code"]) == (404, "dispute_not_found")
    page = world["pages"]["regulator"].post(f"/supervision/disputes/{world['dispute'].pk}/resolve/",
                                            {"outcome": "uphold", "note": "Twice."})
    assert page.status_code == 409
    assert writes() == before


def test_the_settlement_api_decision_is_recorded_as_the_consoles_is(world):
    response = world["api"]["regulator"].post(f"/api/v1/settlement/disputes/{world['dispute'].pk}/resolve/",
                                              {"outcome": "uphold", "note": "Decided from a script."}, format="json")
    assert response.status_code == 200, response.json()
    assert SupervisionAction.objects.get(action="dispute.resolve").reason == "Decided from a script."


def test_no_console_page_or_answer_carries_the_holders_credentials(world, buyer, provider):
    holder_page = Client()
    holder_page.force_login(buyer.user)
    assert SECRET in holder_page.get("/settlement/capacity/").content.decode()  # the secret is there to be found
    pages, api = world["pages"]["regulator"], world["api"]["regulator"]
    seen = []
    for url in ("/supervision/disputes/", "/supervision/disputes/?state=open", "/supervision/participants/",
                f"/supervision/participants/{buyer.organisation_id}/",
                f"/supervision/participants/{provider.organisation_id}/"):
        response = pages.get(url)
        assert response.status_code == 200, url
        seen.append(response.content.decode())
    for url in ("disputes/", f"participants/{buyer.organisation_id}/", f"participants/{provider.organisation_id}/"):
        seen.append(api.get(API + url).content.decode())
    seen.append(post(api, f"disputes/{world['dispute'].pk}/decision/",
                     {"outcome": "uphold", "note": "Seen the logs."}).content.decode())
    seen.append(pages.get("/supervision/disputes/").content.decode())
    assert "ssh://gpu-3.nx.example:22" not in "".join(seen)
    assert all(SECRET not in text for text in seen)


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", ["/supervision/disputes/", API + "disputes/"])
def test_the_queue_costs_the_same_queries_for_more_disputes(world, provider, buyer, url):
    client = world["api"]["regulator"] if url.startswith(API) else world["pages"]["regulator"]
    client.get(url)
    few = _queries(client, url)
    other = allocation_make(provider=provider, buyer=buyer, days_ahead=4, qty=2)
    MeterReport.objects.create(allocation=other, device_hours=Decimal("1"), reported_by=provider.user)
    dispute_make(other, by=buyer)
    for n in range(3):
        Dispute.objects.create(allocation=other, opened_by=buyer.user, reason=f"Old {n}", state=Dispute.State.UPHELD)
    assert _queries(client, url) == few
