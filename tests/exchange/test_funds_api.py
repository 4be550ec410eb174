"""Deposits and withdrawals (operator only) and balances, through the API."""

import pytest

from exchange import ledger
from exchange.models import Journal
from tests.conftest import token_client
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return MembershipFactory(organisation__kind="operator", role="viewer")


def test_operator_records_a_deposit_and_the_buyer_sees_it(operator, buyer):
    response = token_client(operator, scopes=("read",)).post(
        "/api/v1/funds/", {"organisation_id": buyer.organisation_id, "direction": "deposit", "amount": "1500.25"},
        format="json")
    assert response.status_code == 201 and response.data["balances"]["available"] == "1500.25"
    balances = token_client(buyer).get("/api/v1/balances/")
    assert balances.status_code == 200
    assert balances.data == {"available": "1500.25", "held": "0.00", "escrow": "0.00", "payable": "0.00"}
    assert ledger.ledger_check() == []


def test_a_withdrawal_beyond_the_balance_is_refused(operator, buyer):
    ledger.deposit(organisation=buyer.organisation, amount_fen=100_00)
    response = token_client(operator, scopes=("read",)).post(
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
    response = token_client(operator, scopes=("read",)).post("/api/v1/funds/", body, format="json")
    assert response.status_code == 400, response.data
    assert field in response.data["fields"]
    assert not Journal.objects.exists()


def test_a_repeated_deposit_with_the_same_key_is_recorded_once(operator, buyer):
    client = token_client(operator, scopes=("read",))
    body = {"organisation_id": buyer.organisation_id, "direction": "deposit", "amount": "10.00"}
    first = client.post("/api/v1/funds/", body, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    again = client.post("/api/v1/funds/", body, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    assert first.status_code == again.status_code == 201 and again.data == first.data
    assert ledger.balances(organisation=buyer.organisation)["available"] == 10_00
    other = client.post("/api/v1/funds/", {**body, "amount": "20.00"}, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    assert other.status_code == 409
