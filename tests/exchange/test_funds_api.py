"""Deposits and withdrawals (operator only) and balances, through the API."""

import pytest

from exchange import ledger
from exchange.models import Journal
from tests.conftest import token_client
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    """The operator's treasurer: the one role whose credentials record funds."""
    return MembershipFactory(organisation__kind="operator", role="treasurer")


FUNDS = ("read", "funds")


def test_operator_records_a_deposit_and_the_buyer_sees_it(operator, buyer):
    response = token_client(operator, scopes=FUNDS).post(
        "/api/v1/funds/", {"organisation_id": buyer.organisation_id, "direction": "deposit", "amount": "1500.25"},
        format="json")
    assert response.status_code == 201 and response.data["balances"]["available"] == "1500.25"
    balances = token_client(buyer).get("/api/v1/balances/")
    assert balances.status_code == 200
    assert balances.data == {"available": "1500.25", "held": "0.00", "escrow": "0.00", "payable": "0.00"}
    assert ledger.ledger_check() == []


def test_a_withdrawal_beyond_the_balance_is_refused(operator, buyer):
    ledger.deposit(organisation=buyer.organisation, amount_fen=100_00)
    response = token_client(operator, scopes=FUNDS).post(
        "/api/v1/funds/", {"organisation_id": buyer.organisation_id, "direction": "withdrawal", "amount": "100.01"},
        format="json")
    assert response.status_code == 422 and response.data["code"] == "insufficient_funds"
    assert ledger.balances(organisation=buyer.organisation)["available"] == 100_00


def test_only_the_operator_moves_funds(buyer):
    response = token_client(buyer).post(
        "/api/v1/funds/", {"organisation_id": buyer.organisation_id, "direction": "deposit", "amount": "10.00"},
        format="json")
    assert response.status_code == 403
    assert not Journal.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"direction": "deposit", "amount": "10.00"}, "organisation_id"),
    ({"organisation_id": 0, "direction": "gift", "amount": "10.00"}, "direction"),
    ({"organisation_id": 0, "direction": "deposit", "amount": "10.001"}, "amount"),
    ({"organisation_id": 0, "direction": "deposit", "amount": 10.5}, "amount"),
    ({"organisation_id": 0, "direction": "deposit", "amount": "-5"}, "amount"),
    ({"organisation_id": 999999, "direction": "deposit", "amount": "10.00"}, "organisation_id"),
])
def test_bad_fund_movements_are_400_and_write_nothing(operator, buyer, body, field):
    body = {**body, "organisation_id": body.get("organisation_id") or buyer.organisation_id} if "organisation_id" in body else body
    response = token_client(operator, scopes=FUNDS).post("/api/v1/funds/", body, format="json")
    assert response.status_code == 400, response.data
    assert field in response.data["fields"]
    assert not Journal.objects.exists()


def test_a_repeated_deposit_with_the_same_key_is_recorded_once(operator, buyer):
    client = token_client(operator, scopes=FUNDS)
    body = {"organisation_id": buyer.organisation_id, "direction": "deposit", "amount": "10.00"}
    first = client.post("/api/v1/funds/", body, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    again = client.post("/api/v1/funds/", body, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    assert first.status_code == again.status_code == 201 and again.data == first.data
    assert ledger.balances(organisation=buyer.organisation)["available"] == 10_00
    other = client.post("/api/v1/funds/", {**body, "amount": "20.00"}, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    assert other.status_code == 409


@pytest.mark.parametrize("kind, role, scopes", [
    ("operator", "viewer", ("read",)),  # an operator's viewer, with a read token
    ("operator", "treasurer", ("read",)),  # a treasurer's token made without funds
    ("buyer", "treasurer", ("read", "funds")),  # the role in an organisation that is not the operator
    ("operator", "trader", ("read", "trade")),
    ("operator", "regulator", ("read",)),
])
def test_only_the_operators_treasury_with_the_funds_scope_moves_money(buyer, kind, role, scopes):
    member = MembershipFactory(organisation__kind=kind, role=role)
    for direction in ("deposit", "withdrawal"):
        response = token_client(member, scopes=scopes).post(
            "/api/v1/funds/", {"organisation_id": buyer.organisation_id, "direction": direction, "amount": "10.00"},
            format="json")
        assert response.status_code == 403, response.data
        assert response.data["code"] in ("scope_missing", "funds_forbidden")
    assert not Journal.objects.exists()


def test_an_operator_viewers_session_cannot_move_money_but_a_treasurers_can(api, buyer):
    viewer = MembershipFactory(organisation__kind="operator", role="viewer")
    api.force_login(viewer.user)
    body = {"organisation_id": buyer.organisation_id, "direction": "deposit", "amount": "10.00"}
    assert api.post("/api/v1/funds/", body, format="json").status_code == 403
    assert not Journal.objects.exists()
    api.force_login(MembershipFactory(organisation__kind="operator", role="treasurer").user)
    assert api.post("/api/v1/funds/", body, format="json").status_code == 201
    assert ledger.balances(organisation=buyer.organisation)["available"] == 10_00
