"""One organisation's order that the placing statement cannot take fails alone: the orders of
others sharing its batch are placed (the fast route's group commit and the DRF batch path)."""

import asyncio
import dataclasses

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction

from accounts.access import actor_from_user
from accounts.models import Organisation
from exchange import fastpath, ledger
from exchange.db import conninfo
from exchange.gateway import FAILED, order_request_parse, orders_submit_isolating
from exchange.models import FeeTier, InboxCommand, LedgerAccount, Order
from tests.exchange.conftest import make_instrument
from tests.factories import MembershipFactory

# Requests past validation that the statement refuses: a price beyond bigint (what an
# unbounded price became), and a NUL PostgreSQL cannot store.
BREAKERS = {"price_past_bigint": {"price_fen": 10**20}, "nul_in_client_order_id": {"client_order_id": "bad\x00"}}


def market(count: int):
    """An instrument and ``count`` funded organisations, each with one valid bid request."""
    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    instrument = make_instrument()
    requests = []
    for n in range(count):
        membership = MembershipFactory(organisation__kind=Organisation.Kind.BUYER)
        ledger.deposit(organisation=membership.organisation, amount_fen=1_000_00)
        requests.append(order_request_parse(
            {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 2 + n, "client_order_id": f"o-{n}"},
            actor=actor_from_user(membership.user)))
    return instrument, requests


def with_breaker(requests, breaker: dict):
    """The requests with, in the middle, a copy of the first's organisation's order that breaks the statement."""
    bad = dataclasses.replace(requests[0], **{"client_order_id": "bad", **breaker})
    middle = len(requests) // 2
    return requests[:middle] + [bad] + requests[middle:], middle


def assert_placed_alone(requests, results, bad_index):
    assert results[bad_index].code == FAILED and results[bad_index].order_id is None
    for i, (request, result) in enumerate(zip(requests, results)):
        if i == bad_index:
            continue
        assert result.code == "accepted", (i, result)
        order = Order.objects.get(pk=result.order_id)
        assert (order.organisation_id, order.qty, order.held_fen) == (request.organisation_id, request.qty, 2001 * request.qty)
    assert Order.objects.count() == InboxCommand.objects.count() == len(requests) - 1
    assert not Order.objects.filter(client_order_id__startswith="bad").exists()
    assert ledger.ledger_check() == [] and sum(LedgerAccount.objects.values_list("balance", flat=True)) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("breaker", BREAKERS)
def test_the_drf_batch_path_places_everything_but_the_order_that_breaks_the_statement(breaker):
    instrument, requests = market(7)
    requests, bad_index = with_breaker(requests, BREAKERS[breaker])
    with transaction.atomic():
        results = orders_submit_isolating(requests)
    assert_placed_alone(requests, results, bad_index)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("breaker", BREAKERS)
async def test_a_group_commit_places_every_other_organisations_order_when_one_breaks_the_statement(
        breaker, monkeypatch, asgi_closed):
    instrument, requests = await sync_to_async(market)(12)
    requests, bad_index = with_breaker(requests, BREAKERS[breaker])
    statements = []

    def place_params(batch):  # the real parameters, counting the orders of each statement
        statements.append(len(batch))
        return original(batch)

    original = fastpath.place_params
    monkeypatch.setattr(fastpath, "place_params", place_params)
    batcher = fastpath.GroupCommitBatcher(conninfo())
    try:
        results = await asyncio.gather(*(batcher.submit([request]) for request in requests))
    finally:
        await batcher.aclose()
    assert statements[0] == len(requests)  # they were sent together, as concurrent orders are
    assert len(statements) <= 1 + 2 * len(requests).bit_length()  # halving, not one statement per order
    await sync_to_async(assert_placed_alone)(requests, [result for (result,) in results], bad_index)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_group_commit_on_a_lost_connection_fails_its_orders_without_retrying_them(monkeypatch, asgi_closed):
    instrument, requests = await sync_to_async(market)(3)
    attempts = []
    original = fastpath.psycopg.AsyncConnection.connect

    async def connect(*args, **kwargs):
        attempts.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastpath.psycopg.AsyncConnection, "connect", connect)
    batcher = fastpath.GroupCommitBatcher("host=127.0.0.1 port=1 dbname=nowhere connect_timeout=1", connections=1)
    # Submitted together, so they share one batch on the batcher's one connection.
    outcomes = await asyncio.gather(*(batcher.submit([request]) for request in requests), return_exceptions=True)
    await batcher.aclose()
    assert all(isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert len(attempts) == 1  # one batch, one try: nothing was split and tried again against a server that is not there


@pytest.mark.django_db
def test_an_order_for_an_instrument_that_does_not_exist_is_refused_and_its_neighbours_placed():
    # Order rows carry no database constraint on their instrument (cx_place_orders reads
    # it first), so the statement itself must refuse an id it does not find: a stale
    # directory entry would otherwise write an order the engine can never load.
    instrument, requests = market(3)
    ghost = dataclasses.replace(requests[0], client_order_id="ghost", instrument_id=instrument.id + 10_000)
    # An ask makes the statement create a capacity position first: not for an instrument it did not find.
    ghost_ask = dataclasses.replace(ghost, client_order_id="ghost-ask", side="sell")
    with transaction.atomic():
        results = orders_submit_isolating(requests + [ghost, ghost_ask])
    assert [r.code for r in results] == ["accepted"] * 3 + ["unknown_instrument"] * 2
    assert not Order.objects.filter(client_order_id__startswith="ghost").exists()
    assert Order.objects.count() == InboxCommand.objects.count() == 3
    assert ledger.ledger_check() == [] and sum(LedgerAccount.objects.values_list("balance", flat=True)) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_order_alone_is_written_at_once_and_under_load_the_next_batch_gathers_first(monkeypatch, asgi_closed):
    instrument, requests = await sync_to_async(market)(13)
    batcher = fastpath.GroupCommitBatcher(conninfo())
    statements, pauses, late = [], [], []
    original = fastpath.place_params

    def place_params(batch):
        statements.append(len(batch))
        if len(statements) == 2:  # while the burst is written, three more orders arrive
            late.extend(asyncio.get_running_loop().create_task(batcher.submit([r])) for r in requests[10:])
        return original(batch)

    async def pause():
        pauses.append(len(batcher._queue))

    monkeypatch.setattr(fastpath, "place_params", place_params)
    monkeypatch.setattr(batcher, "_pause", pause)
    try:
        (alone,) = await batcher.submit([requests[0]])
        assert (statements, pauses) == ([1], [])  # no waiting for company
        burst = await asyncio.gather(*(batcher.submit([r]) for r in requests[1:10]))
        rest = await asyncio.gather(*late)
    finally:
        await batcher.aclose()
    assert statements == [1, fastpath.BUSY + 1, 3] and pauses == [3]
    assert all(result.code == "accepted" for (result,) in [(alone,), *burst, *rest])
