"""A change of access reaches the very next order, amend and cancel on every path.

Table: change (after the credentials were used, so any cache has them) × action × path
(the fast order route through the real ASGI router, a DRF view, a WebSocket opened before
the change). Every combination is refused and changes nothing: no order, no amend or
cancel command, no hold — and after a move, nothing is charged to the old organisation.
"""

import json
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from accounts.access import actor_from_token, actor_from_user
from accounts.models import ApiToken, Membership, Organisation, User
from accounts.services import token_create
from exchange import ledger
from exchange.asgi import application
from exchange.models import FeeTier, InboxCommand, Order
from exchange.services import order_place
from rest_framework.test import APIClient
from tests.asgi import asgi_request
from tests.exchange.conftest import make_instrument
from tests.factories import MembershipFactory, OrganisationFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.usefixtures("asgi_closed")]
ORIGIN = (b"origin", b"http://127.0.0.1")


@dataclass
class World:
    member: Membership
    token: str
    token_id: int
    instrument_code: str
    resting_id: int
    other: Organisation


@sync_to_async
def world_make() -> World:
    """A funded trader of a verified buyer with a trading token and one resting bid, and a
    second verified organisation (with no funds) to move the trader to."""
    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    member = MembershipFactory(organisation__kind=Organisation.Kind.BUYER, role=Membership.Role.TRADER)
    instrument = make_instrument()
    ledger.deposit(organisation=member.organisation, amount_fen=1_000_000_00)
    token, raw = token_create(membership=member, name="bot", scopes=["read", "trade"])
    resting, _ = order_place(actor=actor_from_token(raw), data={
        "instrument": instrument.code, "side": "buy", "price": "19.00", "qty": 2, "client_order_id": "resting"})
    other = OrganisationFactory(kind=Organisation.Kind.BUYER)
    return World(member, raw, token.id, instrument.code, resting.id, other)


# --------------------------------------------------------------------------- changes


def scope_removed(world: World) -> None:
    ApiToken.objects.filter(pk=world.token_id).update(scopes=["read"])


def role_changed(world: World) -> None:
    Membership.objects.filter(pk=world.member.pk).update(role=Membership.Role.VIEWER)


def user_deactivated(world: World) -> None:
    User.objects.filter(pk=world.member.user_id).update(is_active=False)


def membership_moved(world: World) -> None:
    Membership.objects.filter(pk=world.member.pk).update(organisation=world.other)


def organisation_suspended(world: World) -> None:
    Organisation.objects.filter(pk=world.member.organisation_id).update(kyc_status=Organisation.Kyc.SUSPENDED)


def token_revoked(world: World) -> None:
    ApiToken.objects.filter(pk=world.token_id).update(revoked_at=timezone.now())


CHANGES = {
    "scope_removed": (scope_removed, {"scope_missing"}),
    "role_changed": (role_changed, {"scope_missing"}),
    "user_deactivated": (user_deactivated, {"user_inactive"}),
    # Through a fresh look-up the token acts for the new organisation, which has no funds and
    # none of the old one's orders; the edges that kept the old actor refuse outright.
    "membership_moved": (membership_moved, {"membership_changed", "insufficient_funds", "not_found"}),
    "organisation_suspended": (organisation_suspended, {"organisation_suspended"}),
    "token_revoked": (token_revoked, {"token_revoked"}),
}

PLACE = {"side": "buy", "price": "20.00", "qty": 1}


def action_body(world: World, action: str) -> dict:
    if action == "place":
        return {"instrument": world.instrument_code, **PLACE, "client_order_id": "after-change"}
    if action == "amend":
        return {"price": "19.50"}  # a bid raised: it would hold more
    return {}


# --------------------------------------------------------------------------- paths


class FastPath:
    """POST orders go to the fast order route (a token, no Idempotency-Key); amend and cancel
    go through the same router to Django."""

    def __init__(self, world: World):
        self.world = world

    async def prime(self) -> None:
        status, body = await asgi_request("POST", "/api/v1/orders/", {
            "instrument": self.world.instrument_code, **PLACE, "client_order_id": "before-change"}, self.world.token)
        assert status == 201, body  # the token is now in the route's cache

    async def act(self, action: str) -> tuple[bool, str]:
        body = action_body(self.world, action)
        if action == "place":
            status, reply = await asgi_request("POST", "/api/v1/orders/", body, self.world.token)
        else:
            method = "PATCH" if action == "amend" else "DELETE"
            status, reply = await asgi_request(method, f"/api/v1/orders/{self.world.resting_id}/",
                                               body if action == "amend" else None, self.world.token)
        return status < 400, reply.get("code", "")

    async def close(self) -> None:
        pass


class DrfPath:
    def __init__(self, world: World):
        self.world = world
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Token {world.token}")

    async def prime(self) -> None:
        response = await sync_to_async(self.client.post)("/api/v1/orders/", {
            "instrument": self.world.instrument_code, **PLACE, "client_order_id": "before-change"}, format="json")
        assert response.status_code == 201, response.data

    async def act(self, action: str) -> tuple[bool, str]:
        body = action_body(self.world, action)
        path = f"/api/v1/orders/{self.world.resting_id}/"
        if action == "place":
            response = await sync_to_async(self.client.post)("/api/v1/orders/", body, format="json")
        elif action == "amend":
            response = await sync_to_async(self.client.patch)(path, body, format="json")
        else:
            response = await sync_to_async(self.client.delete)(path)
        return response.status_code < 400, response.data.get("code", "")

    async def close(self) -> None:
        pass


class SocketPath:
    """Commands on an events socket opened (and used) before the change."""

    def __init__(self, world: World):
        self.world = world
        self.ws = WebsocketCommunicator(application, f"/ws/events/?token={world.token}", headers=[ORIGIN])

    async def prime(self) -> None:
        connected, _ = await self.ws.connect()
        assert connected
        assert (await self.ws.receive_json_from(timeout=5))["type"] == "hello"
        await self.ws.send_json_to({"action": "place", "request_id": "prime", "instrument": self.world.instrument_code,
                                    **PLACE, "client_order_id": "before-change"})
        assert (await self._reply("prime"))["type"] == "ack"

    async def _reply(self, request_id) -> dict:
        while True:  # skip the stream's own events
            message = await self.ws.receive_json_from(timeout=5)
            if message.get("request_id") == request_id:
                return message

    async def act(self, action: str) -> tuple[bool, str]:
        command = {"action": action, "request_id": "after", **action_body(self.world, action)}
        if action != "place":
            command["order_id"] = self.world.resting_id
        await self.ws.send_json_to(command)
        reply = await self._reply("after")
        return reply["type"] == "ack", reply.get("code", "")

    async def close(self) -> None:
        await self.ws.disconnect()


PATHS = {"fast": FastPath, "drf": DrfPath, "websocket": SocketPath}


@sync_to_async
def state(world: World) -> dict:
    """What a refused action must leave as it was."""
    resting = Order.objects.get(pk=world.resting_id)
    return {
        "orders": sorted(Order.objects.values_list("organisation_id", "client_order_id")),
        "changes": InboxCommand.objects.exclude(action=InboxCommand.Action.NEW).count(),
        "resting": (resting.price_fen, resting.qty, resting.status),
        "old_balances": ledger.balances(organisation=world.member.organisation),
        "new_balances": ledger.balances(organisation=world.other),
    }


@sync_to_async
def apply_change(change, world: World) -> None:
    change(world)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("action", ["place", "amend", "cancel"])
@pytest.mark.parametrize("change", CHANGES)
async def test_a_change_of_access_refuses_the_next_action(change, action, path):
    world = await world_make()
    edge = PATHS[path](world)
    try:
        await edge.prime()
        before = await state(world)
        apply_for, codes = CHANGES[change]
        await apply_change(apply_for, world)
        accepted, code = await edge.act(action)
        assert not accepted, f"{action} on the {path} path was accepted after {change}"
        assert code in codes, code
        assert await state(world) == before
    finally:
        await edge.close()


async def test_after_a_move_the_fast_route_places_for_the_new_organisation_never_the_old():
    world = await world_make()
    edge = FastPath(world)
    await edge.prime()
    await apply_change(membership_moved, world)
    await sync_to_async(ledger.deposit)(organisation=world.other, amount_fen=100_00)
    status, body = await asgi_request("POST", "/api/v1/orders/", action_body(world, "place"), world.token)
    assert status == 201, body
    order = await Order.objects.aget(pk=body["id"])
    assert order.organisation_id == world.other.id
    old_orders = await sync_to_async(list)(
        Order.objects.filter(organisation_id=world.member.organisation_id).values_list("client_order_id", flat=True))
    assert sorted(old_orders) == ["before-change", "resting"]


async def test_the_fast_route_resolves_a_token_again_once_its_role_may_trade():
    world = await world_make()
    await apply_change(role_changed, world)
    status, body = await asgi_request("POST", "/api/v1/orders/", action_body(world, "place"), world.token)
    assert status == 403 and body["code"] == "scope_missing"
    await Membership.objects.filter(pk=world.member.pk).aupdate(role=Membership.Role.TRADER)
    status, body = await asgi_request("POST", "/api/v1/orders/", action_body(world, "place"), world.token)
    assert status == 201, body


@sync_to_async
def place_as_session(world: World, change) -> str:
    """cx_place_orders for an order of a signed-in person whose actor was resolved before ``change``."""
    from exchange.gateway import order_request_parse, orders_submit

    actor = actor_from_user(world.member.user)
    change(world)
    (result,) = orders_submit([order_request_parse(action_body(world, "place"), actor=actor)])
    return result.code


@pytest.mark.parametrize("change, code", [
    (role_changed, "scope_missing"),
    (user_deactivated, "user_inactive"),
    (membership_moved, "membership_changed"),
    (organisation_suspended, "organisation_suspended"),
])
async def test_order_entry_checks_a_signed_in_persons_current_membership(change, code):
    world = await world_make()
    assert await place_as_session(world, change) == code
    assert not await Order.objects.filter(client_order_id="after-change").aexists()


@pytest.mark.parametrize("change, close_code", [(token_revoked, 4401), (user_deactivated, 4401), (membership_moved, 4403)])
async def test_an_events_socket_closes_once_its_credentials_are_gone(change, close_code):
    world = await world_make()
    edge = SocketPath(world)
    await edge.prime()
    await apply_change(change, world)
    accepted, _ = await edge.act("place")
    assert not accepted
    assert await edge.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": close_code}
    await edge.close()


async def test_after_a_move_a_batch_on_the_fast_route_is_placed_for_the_new_organisation_only():
    world = await world_make()

    def batch(tag):
        return {"orders": [{"instrument": world.instrument_code, **PLACE, "client_order_id": f"{tag}-{n}"}
                           for n in range(2)]}

    status, body = await asgi_request("POST", "/api/v1/orders/batch/", batch("before"), world.token)
    assert status == 200 and [r["status"] for r in body["results"]] == ["accepted", "accepted"], body
    await apply_change(membership_moved, world)
    await sync_to_async(ledger.deposit)(organisation=world.other, amount_fen=100_00)
    status, body = await asgi_request("POST", "/api/v1/orders/batch/", batch("after"), world.token)
    assert status == 200 and [r["status"] for r in body["results"]] == ["accepted", "accepted"], body
    placed = await sync_to_async(set)(Order.objects.filter(client_order_id__startswith="after-").values_list(
        "organisation_id", flat=True))
    assert placed == {world.other.id}


@pytest.mark.parametrize("change, close_code", [
    (token_revoked, 4401), (user_deactivated, 4401), (membership_moved, 4403), (organisation_suspended, 4403),
    (None, None),
])
async def test_an_events_socket_relays_nothing_once_its_credentials_no_longer_read_the_organisation(
        change, close_code, settings):
    # The stream itself, not only commands: after the change, the organisation's next event
    # must not reach a socket opened before it (the check runs on every relay here).
    from channels.layers import get_channel_layer

    from exchange.events import organisation_group

    settings.EVENTS_ACCESS_RECHECK_SECONDS = 0
    world = await world_make()
    edge = SocketPath(world)
    await edge.prime()
    if change is not None:
        await apply_change(change, world)
    event = {"type": "order", "seq": 10**6, "order_id": world.resting_id, "status": "open"}
    await get_channel_layer().group_send(organisation_group(world.member.organisation_id),
                                         {"type": "relay", "events": [event]})
    messages = []
    while True:
        output = await edge.ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            messages.append(output)
            break
        message = json.loads(output["text"])
        messages.append(message)
        if message == event:
            break
    if change is None:
        assert messages[-1] == event
    else:
        assert event not in messages
        assert messages[-2]["type"] == "error"
        assert messages[-1] == {"type": "websocket.close", "code": close_code}
    await edge.close()
