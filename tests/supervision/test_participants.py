"""Participants in the console: the KYC queue, owner groups, fee tiers and attestors, as pages
and as the API. Only the regulator reads them and only with ``supervise`` decides; every
decision is recorded with its reason and reaches the organisation and the consoles; bad
input is refused with a code and writes nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.access import actor_from_user
from accounts.models import BeneficialOwner, Organisation
from exchange.models import FeeTier, MemberTier
from supervision.models import SupervisionAction
from tests.supervision.kyc_helpers import (
    API, applicant, api_clients, listen, operator_member, page_clients, post, received, writes,
)

pytestmark = pytest.mark.django_db
Kyc = Organisation.Kyc


@pytest.fixture
def tiers(db):
    standard, _ = FeeTier.objects.get_or_create(code="standard", defaults=dict(
        name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    maker, _ = FeeTier.objects.get_or_create(code="market-maker", defaults=dict(
        name="Market maker", maker_bps=0, taker_bps=3))
    return {"standard": standard, "market-maker": maker}


@pytest.fixture
def world(buyer, provider, attestor, regulator, tiers):
    members = {"buyer": buyer, "provider": provider, "attestor": attestor, "operator": operator_member()}
    pending = applicant("Lanzhou Render Farm", members=2)
    return {"members": members, "pending": pending, "api": api_clients(members, regulator),
            "pages": page_clients(members, regulator)}


def api_operations(world) -> list[tuple[str, str, dict]]:
    """Every participants operation with a body a regulator may send (reads take none)."""
    target = world["members"]["buyer"].organisation_id
    owner = BeneficialOwner.objects.create(name="Target group").pk
    return [
        ("get", "participants/", {}),
        ("get", f"participants/{target}/", {}),
        ("post", f"participants/{world['pending'].pk}/kyc/", {"action": "approve"}),
        ("post", f"participants/{target}/owner/", {"owner_id": owner, "reason": "Same parent company."}),
        ("post", f"participants/{target}/tier/", {"tier": "market-maker", "reason": "Quotes both sides daily."}),
        ("get", "owners/", {}),
        ("post", "owners/", {"name": "Hexi Holdings", "reason": ""}),
        ("get", "fee-tiers/", {}),
        ("get", "attestors/", {}),
    ]


def test_only_a_regulator_reads_and_only_with_supervise_decides(world):
    clients = world["api"]
    for method, path, body in api_operations(world):
        for name in ("buyer", "provider", "attestor", "operator"):
            response = getattr(clients[name], method)(API + path, body, format="json")
            assert response.status_code == 403, (name, method, path, response.status_code)
            assert response.json()["code"] in ("not_regulator", "scope_missing"), response.json()
        assert getattr(clients["anonymous"], method)(API + path, body, format="json").status_code == 401
        reader = getattr(clients["regulator_read"], method)(API + path, body, format="json")
        assert reader.status_code == (200 if method == "get" else 403), (path, reader.status_code)
    for method, path, body in api_operations(world):
        response = getattr(clients["regulator"], method)(API + path, body, format="json")
        assert response.status_code in (200, 201), (path, response.json())


PAGES = ["/supervision/participants/", "/supervision/participants/owners/", "/supervision/participants/tiers/",
         "/supervision/participants/attestors/"]


def page_posts(world) -> list[tuple[str, dict]]:
    target = world["pending"].pk
    owner = BeneficialOwner.objects.create(name="Page group").pk
    return [(f"/supervision/participants/{target}/kyc/", {"action": "approve"}),
            (f"/supervision/participants/{target}/owner/", {"owner_id": owner, "reason": "One parent."}),
            (f"/supervision/participants/{target}/tier/", {"tier": "market-maker", "reason": "Market maker."}),
            ("/supervision/participants/owners/", {"name": "Page Holdings"})]


def test_pages_are_for_the_regulator_only(world):
    pages, target = world["pages"], world["pending"].pk
    urls = PAGES + [f"/supervision/participants/{target}/"]
    for url in urls:
        response = pages["anonymous"].get(url)
        assert response.status_code == 302 and "/accounts/sign-in/" in response["Location"], url
        for name in ("buyer", "provider", "attestor", "operator"):
            response = pages[name].get(url)
            assert response.status_code == 403 and b"for the regulator" in response.content, (name, url)
        assert pages["regulator"].get(url).status_code == 200, url
    posts = page_posts(world)
    before = writes()
    for url, body in posts:
        assert pages["anonymous"].post(url, body).status_code == 302
        for name in ("buyer", "provider", "attestor", "operator"):
            assert pages[name].post(url, body).status_code == 403, (name, url)
    assert writes() == before
    for url, body in posts:
        assert pages["regulator"].post(url, body).status_code == 302, url
    assert SupervisionAction.objects.count() == 4


def test_the_queue_shows_pending_applications_oldest_first_with_their_members(world):
    later = applicant("Xining Vision Lab", members=3)
    response = world["pages"]["regulator"].get("/supervision/participants/")
    text = response.content.decode()
    assert text.index("Lanzhou Render Farm") < text.index("Xining Vision Lab")
    for member in later.memberships.select_related("user"):
        assert member.user.email in text
    listed = world["api"]["regulator"].get(API + "participants/").json()["results"]
    assert [p["name"] for p in listed[:2]] == ["Lanzhou Render Farm", "Xining Vision Lab"]
    assert all(p["kyc_status"] != "pending" for p in listed[2:])
    assert len(listed[1]["members"]) == 3
    only_pending = world["api"]["regulator"].get(API + "participants/", {"status": "pending", "kind": "buyer"}).json()
    assert {p["name"] for p in only_pending["results"]} == {"Lanzhou Render Farm", "Xining Vision Lab"}


@pytest.mark.parametrize("start, action, reason, status", [
    (Kyc.PENDING, "approve", "", Kyc.VERIFIED),
    (Kyc.PENDING, "reject", "The registration certificate does not match the name.", Kyc.REJECTED),
    (Kyc.REJECTED, "approve", "Certificate corrected.", Kyc.VERIFIED),
    (Kyc.VERIFIED, "suspend", "Under investigation for wash trades.", Kyc.SUSPENDED),
    (Kyc.PENDING, "suspend", "Forged documents.", Kyc.SUSPENDED),
    (Kyc.SUSPENDED, "reinstate", "Investigation closed.", Kyc.VERIFIED),
])
def test_a_kyc_decision_is_recorded_and_reaches_the_organisation_and_the_consoles(
        world, regulator, start, action, reason, status, django_capture_on_commit_callbacks):
    organisation = world["pending"]
    Organisation.objects.filter(pk=organisation.pk).update(kyc_status=start)
    private, console = listen(organisations=[organisation.pk], console=False), listen()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(world["api"]["regulator"], f"participants/{organisation.pk}/kyc/",
                        {"action": action, "reason": reason})
    assert response.status_code == 200, response.json()
    assert response.json()["kyc_status"] == status
    organisation.refresh_from_db()
    assert organisation.kyc_status == status
    (record,) = SupervisionAction.objects.filter(organisation=organisation)
    assert (record.action, record.reason, record.actor_id, record.regulator_id) == (
        f"kyc.{action}", reason, regulator.user_id, regulator.organisation_id)
    assert {k: record.details[k] for k in ("from", "to")} == {"from": start, "to": status}
    assert record.details.get("cancelled_orders", 0) == 0  # a suspension counts the orders it cancelled: none
    assert response.json()["history"][0]["action"] == f"kyc.{action}"
    (event,) = received(private)
    assert {k: event[k] for k in ("type", "status", "reason")} == {"type": "kyc.changed", "status": status,
                                                                   "reason": reason}
    assert isinstance(event["seq"], int)
    (shown,) = received(console)
    assert shown["type"] == "kyc.changed" and shown["organisation_id"] == organisation.pk
    assert (shown["status"], shown["previous"], shown["action_id"]) == (status, start, record.pk)


@pytest.mark.parametrize("start, body, http, code, field", [
    (Kyc.PENDING, {"action": "reject"}, 400, "invalid", "reason"),
    (Kyc.PENDING, {"action": "reject", "reason": "   "}, 400, "invalid", "reason"),
    (Kyc.VERIFIED, {"action": "suspend", "reason": "x" * 1001}, 400, "invalid", "reason"),
    (Kyc.PENDING, {"action": "ban", "reason": "No."}, 400, "invalid", "action"),
    (Kyc.PENDING, {}, 400, "invalid", "action"),
    (Kyc.VERIFIED, {"action": "approve"}, 409, "kyc_transition", None),
    (Kyc.VERIFIED, {"action": "reject", "reason": "Too late."}, 409, "kyc_transition", None),
    (Kyc.VERIFIED, {"action": "reinstate", "reason": "Never suspended."}, 409, "kyc_transition", None),
    (Kyc.SUSPENDED, {"action": "suspend", "reason": "Twice."}, 409, "kyc_transition", None),
])
def test_a_refused_kyc_decision_says_why_and_writes_nothing(world, start, body, http, code, field):
    organisation = world["pending"]
    Organisation.objects.filter(pk=organisation.pk).update(kyc_status=start)
    before = writes()
    response = post(world["api"]["regulator"], f"participants/{organisation.pk}/kyc/", body, key="k-1")
    assert response.status_code == http, response.json()
    assert response.json()["code"] == code and response.json()["detail"]
    if field:
        assert field in response.json()["fields"]
    assert writes() == before


def test_decisions_about_no_one_or_about_the_regulator_itself_are_refused(world, regulator):
    client, before = world["api"]["regulator"], writes()
    for target, http, code in ((2**62, 404, "organisation_not_found"), (regulator.organisation_id, 422, "not_a_participant"),
                               (world["members"]["operator"].organisation_id, 422, "not_a_participant")):
        response = post(client, f"participants/{target}/kyc/", {"action": "suspend", "reason": "Testing."})
        assert (response.status_code, response.json()["code"]) == (http, code)
        assert client.get(f"{API}participants/{target}/").status_code == 404
    assert writes() == before


def test_a_repeated_idempotency_key_answers_the_same_once(world):
    client, target = world["api"]["regulator"], world["pending"].pk
    first = post(client, f"participants/{target}/kyc/", {"action": "reject", "reason": "Incomplete."}, key="once")
    again = post(client, f"participants/{target}/kyc/", {"action": "reject", "reason": "Incomplete."}, key="once")
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert again["Idempotent-Replay"] == "true"
    assert SupervisionAction.objects.filter(organisation_id=target).count() == 1
    other = post(client, f"participants/{target}/kyc/", {"action": "approve"}, key="once")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    owner = post(client, "owners/", {"name": "Longmen Group"}, key="group")
    assert post(client, "owners/", {"name": "Longmen Group"}, key="group").json() == owner.json()
    assert BeneficialOwner.objects.filter(name="Longmen Group").count() == 1


def test_approving_through_the_queue_page_opens_trading(world):
    pages, organisation = world["pages"], world["pending"]
    trader = organisation.memberships.select_related("user").first()
    from accounts.access import check_actor
    from exchange.errors import AppError

    with pytest.raises(AppError) as refused:
        check_actor(actor_from_user(trader.user), scope="trade", acting=True)
    assert refused.value.code == "kyc_pending"
    response = pages["regulator"].post(f"/supervision/participants/{organisation.pk}/kyc/",
                                       {"action": "approve", "reason": "", "next": "queue"})
    assert response.status_code == 302 and response["Location"] == "/supervision/participants/"
    check_actor(actor_from_user(trader.user), scope="trade", acting=True)
    followed = pages["regulator"].get(response["Location"])
    assert "Lanzhou Render Farm" in followed.content.decode() and "KYC verified" in followed.content.decode()


def test_a_refused_page_decision_is_shown_with_its_status_and_what_was_typed(world):
    pages, target = world["pages"], world["pending"].pk
    before = writes()
    response = pages["regulator"].post(f"/supervision/participants/{target}/kyc/", {"action": "suspend", "reason": ""})
    assert response.status_code == 400 and b"Give the reason" in response.content
    response = pages["regulator"].post(f"/supervision/participants/{target}/kyc/",
                                       {"action": "reinstate", "reason": "Back to work"})
    assert response.status_code == 409 and b"Back to work" in response.content
    assert pages["regulator"].post("/supervision/participants/2000000000/kyc/", {"action": "approve"}).status_code == 404
    assert pages["regulator"].post("/supervision/participants/owners/", {"name": ""}).status_code == 400
    assert writes() == before


def test_owner_groups_are_created_and_organisations_moved_with_a_reason(world, django_capture_on_commit_callbacks):
    client, organisation = world["api"]["regulator"], world["members"]["provider"].organisation
    created = post(client, "owners/", {"name": "Xibu Holdings", "reason": "Parent of two providers."})
    assert created.status_code == 201 and created.json()["organisations"] == []
    assert post(client, "owners/", {"name": "xibu holdings"}).json()["code"] == "owner_exists"
    group = created.json()["id"]
    private = listen(organisations=[organisation.pk], console=False)
    with django_capture_on_commit_callbacks(execute=True):
        moved = post(client, f"participants/{organisation.pk}/owner/", {"owner_id": group, "reason": "Annual report."})
    assert moved.status_code == 200 and moved.json()["beneficial_owner"] == {"id": group, "name": "Xibu Holdings"}
    (event,) = received(private)
    assert (event["type"], event["owner"], event["reason"]) == ("beneficial_owner.changed", "Xibu Holdings",
                                                                "Annual report.")
    record = SupervisionAction.objects.get(action="owner.assign")
    assert record.details["to_owner_id"] == group and record.reason == "Annual report."
    before = writes()
    for body, http, code in (({"owner_id": group, "reason": "Again."}, 409, "no_change"),
                             ({"owner_id": 2**62, "reason": "Nowhere."}, 400, "invalid"),
                             ({"owner_id": group}, 400, "invalid"), ({"owner_id": "x", "reason": "?"}, 400, "invalid")):
        response = post(client, f"participants/{organisation.pk}/owner/", body)
        assert (response.status_code, response.json()["code"]) == (http, code), body
    assert writes() == before
    listed = client.get(API + "owners/").json()["results"]
    assert listed[0]["name"] == "Xibu Holdings" or any(o["name"] == "Xibu Holdings" for o in listed)


def test_a_fee_tier_is_assigned_and_removed_with_a_reason(world, tiers, django_capture_on_commit_callbacks):
    client, organisation = world["api"]["regulator"], world["members"]["buyer"].organisation
    private = listen(organisations=[organisation.pk], console=False)
    with django_capture_on_commit_callbacks(execute=True):
        assigned = post(client, f"participants/{organisation.pk}/tier/", {"tier": "market-maker", "reason": "Quotes."})
    assert assigned.status_code == 200 and assigned.json()["fee_tier"] == "market-maker"
    assert MemberTier.objects.get(organisation=organisation).tier == tiers["market-maker"]
    (event,) = received(private)
    assert (event["type"], event["tier"], event["taker_bps"]) == ("fee_tier.changed", "market-maker", 3)
    tiers_listed = client.get(API + "fee-tiers/").json()
    assert tiers_listed[0]["code"] == "standard" and tiers_listed[0]["is_default"]
    assert {m["name"] for m in tiers_listed[1]["members"]} == {organisation.name}
    before = writes()
    for body, http, code in (({"tier": "market-maker", "reason": "Again."}, 409, "no_change"),
                             ({"tier": "platinum", "reason": "No such."}, 400, "invalid"),
                             ({"tier": None}, 400, "invalid")):
        response = post(client, f"participants/{organisation.pk}/tier/", body)
        assert (response.status_code, response.json()["code"]) == (http, code), body
    assert writes() == before
    removed = post(client, f"participants/{organisation.pk}/tier/", {"tier": None, "reason": "No longer quoting."})
    assert removed.status_code == 200 and removed.json()["fee_tier"] is None
    assert not MemberTier.objects.filter(organisation=organisation).exists()
    assert list(SupervisionAction.objects.order_by("id").values_list("action", flat=True)) == ["tier.assign",
                                                                                              "tier.remove"]


def test_a_higher_taker_fee_waits_until_no_bid_holds_the_lower_one(world, tiers):
    from exchange import ledger
    from exchange.services import order_place
    from tests.exchange.conftest import make_instrument

    buyer = world["members"]["buyer"]
    MemberTier.objects.create(organisation=buyer.organisation, tier=tiers["market-maker"])
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_00)
    order, _ = order_place(actor=actor_from_user(buyer.user), data={
        "instrument": make_instrument().code, "side": "buy", "price": "19.00", "qty": 1})
    before = writes()
    response = post(world["api"]["regulator"], f"participants/{buyer.organisation_id}/tier/",
                    {"tier": None, "reason": "Back to standard."})
    assert (response.status_code, response.json()["code"]) == (409, "bids_open")
    assert writes() == before


def test_attestors_are_listed_with_their_keys_and_a_suspension_stops_their_attestations(world, attestor_key):
    from exchange.errors import AppError
    from marketplace.access import check_attestor

    key, _ = attestor_key
    client, organisation = world["api"]["regulator"], key.organisation
    listed = client.get(API + "attestors/").json()["results"]
    (mine,) = [a for a in listed if a["id"] == organisation.pk]
    assert [k["key_id"] for k in mine["keys"]] == [key.key_id]
    page = world["pages"]["regulator"].get("/supervision/participants/attestors/")
    assert key.key_id in page.content.decode()
    response = post(client, f"participants/{organisation.pk}/kyc/", {"action": "suspend", "reason": "Rigged runs."})
    assert response.status_code == 200 and response.json()["attestor_keys"][0]["key_id"] == key.key_id
    member = organisation.memberships.get()
    with pytest.raises(AppError) as refused:
        check_attestor(actor_from_user(member.user))
    assert refused.value.code == "organisation_suspended"


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", ["/supervision/participants/", "/supervision/participants/owners/",
                                 "/supervision/participants/tiers/", "/supervision/participants/attestors/",
                                 API + "participants/", API + "owners/", API + "fee-tiers/", API + "attestors/"])
def test_list_pages_cost_the_same_queries_for_more_rows(world, tiers, url):
    from tests.factories import MembershipFactory

    client = world["api"]["regulator"] if url.startswith(API) else world["pages"]["regulator"]
    client.get(url)  # sessions, content types and the like are cached from here on

    def grow():
        for n in range(3):
            organisation = applicant(members=2)
            MemberTier.objects.create(organisation=organisation, tier=tiers["market-maker"])
            MembershipFactory(organisation__kind=Organisation.Kind.ATTESTOR, role="provider_admin")

    grow()
    few = _queries(client, url)
    grow()
    grow()
    assert _queries(client, url) == few
