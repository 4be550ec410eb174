"""Deposit and withdrawal requests: a member asks, the treasury completes or refuses; bad
input, callers who may not, repeated requests; the ledger balanced after each."""

import pytest

from accounts.models import Membership, Organisation
from exchange import ledger
from exchange.models import FundsRequest, Journal, LedgerAccount
from tests.conftest import token_client
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/funds/requests/"


@pytest.fixture
def treasurer():
    return MembershipFactory(organisation__kind=Organisation.Kind.OPERATOR, role=Membership.Role.TREASURER)


@pytest.fixture
def treasury(treasurer):
    return token_client(treasurer, scopes=("read", "funds"))


@pytest.fixture
def member(buyer):
    return token_client(buyer)


def balanced():
    from exchange.invariants import invariants_check

    assert invariants_check() == []
    assert sum(LedgerAccount.objects.values_list("balance", flat=True)) == 0
    return True


def available(membership) -> int:
    return ledger.balances(organisation=membership.organisation)["available"]


def test_a_deposit_is_credited_when_the_treasury_completes_it(member, treasury, buyer):
    asked = member.post(URL, {"direction": "deposit", "amount": "5000.00"}, format="json")
    assert asked.status_code == 201, asked.data
    assert asked.data["state"] == "pending" and asked.data["reference"].startswith("CX-")
    assert available(buyer) == 0  # nothing moves before the money arrives
    done = treasury.post(f"{URL}{asked.data['id']}/complete/", {"note": "bank ref 8812"}, format="json")
    assert done.status_code == 200 and done.data["state"] == "completed"
    assert available(buyer) == 500_000
    request = FundsRequest.objects.get()
    assert request.journal.kind == Journal.Kind.DEPOSIT and asked.data["reference"] in request.journal.memo
    assert balanced()
    # Completed once: again is a conflict, and nothing moves.
    again = treasury.post(f"{URL}{asked.data['id']}/complete/", {}, format="json")
    assert again.status_code == 409 and again.data["code"] == "not_pending"
    assert available(buyer) == 500_000


def test_a_withdrawal_is_checked_when_asked_and_when_completed(member, treasury, buyer):
    ledger.deposit(organisation=buyer.organisation, amount_fen=100_000)
    too_much = member.post(URL, {"direction": "withdrawal", "amount": "1000.01", "bank_account": "6222 0000 1111"},
                           format="json")
    assert too_much.status_code == 422 and too_much.data["fields"]["amount"] == "At most 1000.00 CNY."
    asked = member.post(URL, {"direction": "withdrawal", "amount": "800.00", "bank_account": "6222 0000 1111"},
                        format="json")
    assert asked.status_code == 201
    # Spent meanwhile: the treasury cannot complete it, and nothing moves.
    ledger.withdraw(organisation=buyer.organisation, amount_fen=50_000)
    refused = treasury.post(f"{URL}{asked.data['id']}/complete/", {}, format="json")
    assert refused.status_code == 409 and refused.data["code"] == "insufficient_funds"
    assert FundsRequest.objects.get().state == "pending" and available(buyer) == 50_000
    no_reason = treasury.post(f"{URL}{asked.data['id']}/refuse/", {"note": " "}, format="json")
    assert no_reason.status_code == 400 and "note" in no_reason.data["fields"]
    assert treasury.post(f"{URL}{asked.data['id']}/refuse/", {"note": "Funds spent"}, format="json").data["state"] == "refused"
    assert balanced()


@pytest.mark.parametrize("body, field", [
    ({"direction": "deposit", "amount": "0"}, "amount"),
    ({"direction": "deposit", "amount": "-5"}, "amount"),
    ({"direction": "deposit", "amount": "1.001"}, "amount"),
    ({"direction": "deposit", "amount": 12.5}, "amount"),
    ({"direction": "deposit", "amount": "1e30"}, "amount"),
    ({"direction": "deposit", "amount": "100000000000.00"}, "amount"),
    ({"direction": "sideways", "amount": "10"}, "direction"),
    ({"direction": "withdrawal", "amount": "10"}, "bank_account"),
    ({"direction": "withdrawal", "amount": "10", "bank_account": "62\u00002"}, "bank_account"),
    ({"direction": "deposit", "amount": "10", "bank_account": "6222"}, "bank_account"),
    ({"direction": "deposit", "amount": "10", "bank_account": {"x": 1}}, "bank_account"),
])
def test_bad_requests_are_refused_by_the_field_and_write_nothing(member, body, field):
    response = member.post(URL, body, format="json")
    assert response.status_code == 400 and field in response.data["fields"], response.data
    assert not FundsRequest.objects.exists()


def test_not_a_json_object(member):
    assert member.post(URL, [1, 2], format="json").status_code == 400


def test_a_repeated_request_with_its_key_is_made_once(member):
    first = member.post(URL, {"direction": "deposit", "amount": "10.00"}, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    second = member.post(URL, {"direction": "deposit", "amount": "10.00"}, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    assert (first.status_code, second.status_code) == (201, 201) and first.data == second.data
    assert FundsRequest.objects.count() == 1


def test_pending_requests_are_limited(member):
    from exchange.funds import MAX_PENDING

    for _ in range(MAX_PENDING):
        assert member.post(URL, {"direction": "deposit", "amount": "1.00"}, format="json").status_code == 201
    over = member.post(URL, {"direction": "deposit", "amount": "1.00"}, format="json")
    assert over.status_code == 409 and over.data["code"] == "too_many_pending"


def test_who_may_do_what(member, treasury, buyer, provider, regulator, treasurer):
    asked = member.post(URL, {"direction": "deposit", "amount": "10.00"}, format="json").data
    other = token_client(provider, scopes=("read", "trade", "provide"))
    # Another organisation neither sees it nor cancels it; members cannot complete or refuse.
    assert other.get(URL).data["results"] == []
    assert other.post(f"{URL}{asked['id']}/cancel/").status_code == 404
    for caller in (member, other):
        assert caller.post(f"{URL}{asked['id']}/complete/", {}, format="json").status_code == 403
        assert caller.post(f"{URL}{asked['id']}/refuse/", {"note": "x"}, format="json").status_code == 403
    # Read-only credentials and a regulator cannot ask; the treasury cannot ask for itself.
    assert token_client(buyer, scopes=("read",)).post(URL, {"direction": "deposit", "amount": "1"},
                                                      format="json").status_code == 403
    assert token_client(regulator, scopes=("read",)).post(URL, {"direction": "deposit", "amount": "1"},
                                                         format="json").status_code == 403
    assert treasury.post(URL, {"direction": "deposit", "amount": "1"}, format="json").status_code == 403
    assert [r["id"] for r in treasury.get(URL).data["results"]] == [asked["id"]]
    assert member.post(f"{URL}{asked['id']}/cancel/").data["state"] == "cancelled"
    assert treasury.post(f"{URL}{asked['id']}/complete/", {}, format="json").status_code == 409
    assert treasury.post(f"{URL}99999999/complete/", {}, format="json").status_code == 404


def test_the_page_asks_and_the_treasury_completes(client, buyer, treasurer):
    client.force_login(buyer.user)
    refused = client.post("/funds/request/", {"direction": "withdrawal", "amount": "10.00", "bank_account": ""})
    assert refused.status_code == 400 and 'data-error-for="bank_account"' in refused.content.decode()
    asked = client.post("/funds/request/", {"direction": "deposit", "amount": "2500.00"})
    assert asked.status_code == 302
    request = FundsRequest.objects.get()
    page = client.get("/funds/").content.decode()
    assert request.reference in page and f'data-request="{request.id}"' in page
    assert client.post(f"/funds/{request.id}/complete/").status_code == 403  # not the treasury

    client.force_login(treasurer.user)
    assert request.reference in client.get("/funds/").content.decode()
    assert client.post(f"/funds/{request.id}/complete/", {"note": "arrived"}).status_code == 302
    assert available(buyer) == 250_000
    assert client.post(f"/funds/{request.id}/refuse/", {"note": "late"}).status_code == 409
    assert balanced()


def test_each_change_reaches_the_private_stream(member, treasury, buyer, django_capture_on_commit_callbacks):
    from exchange.models import EventSequence

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        asked = member.post(URL, {"direction": "deposit", "amount": "10.00"}, format="json").data
        treasury.post(f"{URL}{asked['id']}/complete/", {}, format="json")
    assert len(callbacks) == 2
    assert EventSequence.objects.get(organisation=buyer.organisation).seq == 2


def test_a_repeated_completion_with_its_key_replays_and_credits_once(member, treasury, buyer):
    asked = member.post(URL, {"direction": "deposit", "amount": "10.00"}, format="json").data
    first = treasury.post(f"{URL}{asked['id']}/complete/", {}, format="json", HTTP_IDEMPOTENCY_KEY="complete-1")
    second = treasury.post(f"{URL}{asked['id']}/complete/", {}, format="json", HTTP_IDEMPOTENCY_KEY="complete-1")
    assert (first.status_code, second.status_code) == (200, 200) and second["Idempotent-Replay"] == "true"
    assert available(buyer) == 1_000 and balanced()
