"""A suspension decided in the console refuses the organisation's very next order, amendment
and cancel on every path: the fast order route, the DRF views, and a WebSocket opened (and
used) before the decision. The decision goes through the console's API, as a regulator
makes it, not through a direct update; and a reinstatement opens trading again at once.

The paths and the state snapshot are tests/accounts/test_access_changes.py's."""

import json

import pytest
from asgiref.sync import sync_to_async

from accounts.models import Membership, Organisation
from supervision.models import SupervisionAction
from tests.accounts.test_access_changes import PATHS, SocketPath, state, world_make
from tests.conftest import token_client
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.usefixtures("asgi_closed")]
REASON = "Orders placed for an unlicensed client."


@sync_to_async
def console_decides(organisation_id: int, action: str, reason: str = REASON, **extra) -> dict:
    regulator = MembershipFactory(organisation__kind=Organisation.Kind.REGULATOR, role=Membership.Role.REGULATOR)
    client = token_client(regulator, scopes=("read", "supervise"))
    response = client.post(f"/api/v1/supervision/participants/{organisation_id}/kyc/",
                           {"action": action, "reason": reason, **extra}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("action", ["place", "amend", "cancel"])
async def test_a_console_suspension_refuses_the_next_action_on_every_path(action, path):
    world = await world_make()
    edge = PATHS[path](world)
    try:
        await edge.prime()
        before = await state(world)
        # Its resting orders stay (their cancellation is tested below): nothing may change.
        decided = await console_decides(world.member.organisation_id, "suspend", cancel_orders=False)
        assert decided["kyc_status"] == "suspended"
        accepted, code = await edge.act(action)
        assert not accepted, f"{action} on the {path} path was accepted after the suspension"
        assert code == "organisation_suspended", code
        assert await state(world) == before
    finally:
        await edge.close()
    assert await SupervisionAction.objects.filter(organisation_id=world.member.organisation_id,
                                                  action="kyc.suspend").acount() == 1


@pytest.mark.parametrize("path", PATHS)
async def test_reinstating_in_the_console_opens_the_next_order_on_every_path(path):
    world = await world_make()
    edge = PATHS[path](world)
    try:
        await edge.prime()
        await console_decides(world.member.organisation_id, "suspend")
        assert (await edge.act("place"))[1] == "organisation_suspended"
        if path == "websocket":  # the suspension closed the socket: a new one, after the reinstatement
            await edge.close()
            edge = SocketPath(world)
        await console_decides(world.member.organisation_id, "reinstate", "Licence shown.")
        if path == "websocket":
            await edge.prime()
        accepted, code = await edge.act("place")
        assert accepted, code
    finally:
        await edge.close()


async def test_an_open_events_socket_hears_the_reason_then_closes(settings):
    settings.EVENTS_ACCESS_RECHECK_SECONDS = 0
    world = await world_make()
    edge = SocketPath(world)
    await edge.prime()
    await console_decides(world.member.organisation_id, "suspend")
    messages = []
    while True:
        output = await edge.ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            messages.append(output)
            break
        messages.append(json.loads(output["text"]))
    kyc = [m for m in messages if m.get("type") == "kyc.changed"]
    assert kyc and kyc[0]["status"] == "suspended" and kyc[0]["reason"] == REASON
    assert messages[-2]["type"] == "error" and messages[-2]["code"] == "organisation_suspended"
    assert messages[-1] == {"type": "websocket.close", "code": 4403}
    await edge.close()



@sync_to_async
def engine_runs() -> None:
    from exchange.engine import EngineRunner
    from tests.exchange.conftest import drain

    engine = EngineRunner()
    engine.load()
    drain(engine)


async def test_a_suspension_cancels_the_resting_orders_unless_told_to_keep_them():
    from exchange import ledger
    from exchange.models import LedgerAccount, Order

    world = await world_make()
    await engine_runs()
    assert (await Order.objects.aget(pk=world.resting_id)).status == Order.Status.OPEN
    kept = await console_decides(world.member.organisation_id, "suspend", cancel_orders=False)
    await engine_runs()
    assert (await Order.objects.aget(pk=world.resting_id)).status == Order.Status.OPEN
    await console_decides(world.member.organisation_id, "reinstate", "Cleared.")
    await console_decides(world.member.organisation_id, "suspend")
    await engine_runs()
    assert (await Order.objects.aget(pk=world.resting_id)).status == Order.Status.CANCELLED
    balances = await sync_to_async(ledger.balances)(organisation=world.member.organisation)
    assert balances.get(LedgerAccount.Kind.HELD, 0) == 0, balances
    records = [r async for r in SupervisionAction.objects.filter(action="kyc.suspend").order_by("id")]
    assert [r.details["cancelled_orders"] for r in records] == [0, 1]
    assert kept["history"][0]["details"]["cancelled_orders"] == 0
