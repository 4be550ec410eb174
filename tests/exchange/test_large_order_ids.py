"""Order ids past 2^31 − 1, and a demo simulator that outlives one failed action."""

import logging

import pytest
from django.db import DatabaseError, connection

from exchange import ledger, services
from exchange.models import Order
from exchange.simulation import MarketSimulator
from tests.conftest import token_client
from tests.exchange.conftest import drain

pytestmark = pytest.mark.django_db


def bid(instrument, price="20.00", qty=10):
    return {"instrument": instrument.code, "side": "buy", "price": price, "qty": qty}


def test_orders_with_ids_past_two_to_the_31_can_be_amended_and_cancelled(instrument, funded_buyer, runner):
    with connection.cursor() as cursor:
        cursor.execute("ALTER SEQUENCE exchange_order_id_seq RESTART WITH 3000000000")
    client = token_client(funded_buyer)
    placed = client.post("/api/v1/orders/", bid(instrument), format="json")
    assert placed.status_code == 201 and placed.data["id"] >= 3_000_000_000
    order_id = placed.data["id"]
    drain(runner)
    amended = client.patch(f"/api/v1/orders/{order_id}/", {"qty": 4}, format="json")
    assert amended.status_code == 202, amended.data
    drain(runner)
    assert Order.objects.get(pk=order_id).remaining == 4
    cancelled = client.delete(f"/api/v1/orders/{order_id}/")
    assert cancelled.status_code == 202, cancelled.data
    drain(runner)
    assert Order.objects.get(pk=order_id).status == Order.Status.CANCELLED
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 0
    for beyond in (2**63, 10**30):
        assert client.delete(f"/api/v1/orders/{beyond}/").status_code == 404
        assert client.patch(f"/api/v1/orders/{beyond}/", {"qty": 1}, format="json").status_code == 404


def test_the_order_lock_key_fits_any_order_id_and_never_meets_the_provenance_lock():
    from marketplace.services.provenance import PROVENANCE_LOCK

    # The engine's shard locks use the two-int form, a key space of their own; the
    # provenance chain uses the one-bigint form, as the order lock does.
    ids = (1, 2**31 - 1, 2**31, 3_000_000_000, PROVENANCE_LOCK, 2**63 - 1)
    keys = [services.order_lock_key(order_id) for order_id in ids]
    assert all(-(2**63) <= key < 2**63 and key != PROVENANCE_LOCK for key in keys)
    assert len(set(keys)) == len(ids)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [services.order_lock_key(2**63 - 1)])


@pytest.fixture
def simulator(instrument, funded_buyer, listed_provider):
    return MarketSimulator(instruments=1, seed=7)


def test_the_simulator_logs_a_failed_action_and_carries_on(simulator, monkeypatch, caplog):
    real_place, calls = services.order_place, []

    def place_failing_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise DatabaseError("function pg_advisory_xact_lock(integer, bigint) does not exist")
        return real_place(**kwargs)

    monkeypatch.setattr(services, "order_place", place_failing_once)
    with caplog.at_level(logging.ERROR, logger="exchange.simulation"):
        placed = simulator.tick()
    assert len(calls) >= 2 and placed >= 1  # the action after the failed one went through
    assert Order.objects.count() == placed
    assert any("pg_advisory_xact_lock" in (r.exc_text or "") or "pg_advisory_xact_lock" in r.getMessage()
               for r in caplog.records)


def test_the_simulator_loop_survives_a_failed_round(simulator, monkeypatch, caplog):
    rounds = []

    def tick():
        rounds.append(1)
        if len(rounds) == 1:
            raise DatabaseError("the database went away")
        return 0

    monkeypatch.setattr(simulator, "tick", tick)
    with caplog.at_level(logging.ERROR, logger="exchange.simulation"):
        simulator.run(interval=0, stop=lambda: len(rounds) >= 3)
    assert len(rounds) == 3
    assert any("round failed" in r.getMessage() for r in caplog.records)


def test_the_simulator_carries_on_when_a_cancel_fails(instrument, funded_buyer, listed_provider, monkeypatch, caplog):
    simulator = MarketSimulator(instruments=1, seed=7, max_resting=0)  # cancels what it placed at once
    cancels = []

    def cancel_failing(**kwargs):
        cancels.append(kwargs)
        raise DatabaseError("function pg_advisory_xact_lock(integer, bigint) does not exist")

    monkeypatch.setattr(services, "order_cancel", cancel_failing)
    with caplog.at_level(logging.ERROR, logger="exchange.simulation"):
        placed = simulator.tick()
        placed += simulator.tick()
    assert placed >= 2 and len(cancels) == placed  # every cancel failed, and the rounds went on
    assert any("simulated cancel" in r.getMessage() for r in caplog.records)
