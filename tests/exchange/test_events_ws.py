import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connections

from accounts.models import Organisation
from exchange.asgi import application
from exchange.events import organisation_group
from tests.conftest import token_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def _close_connections():
    yield
    await sync_to_async(connections.close_all)()


def _origin():
    return [(b"origin", b"http://127.0.0.1")]


async def test_private_stream_relays_the_organisations_events(buyer):
    client = await sync_to_async(token_client)(buyer)
    ws = WebsocketCommunicator(application, f"/ws/events/?token={client.raw_token}", headers=_origin())
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from(timeout=3))["type"] == "hello"
    await get_channel_layer().group_send(
        organisation_group(buyer.organisation_id), {"type": "relay", "events": [{"type": "order.accepted", "seq": 1}]}
    )
    assert await ws.receive_json_from(timeout=3) == {"type": "order.accepted", "seq": 1}
    await ws.disconnect()


async def test_stream_refuses_missing_token_and_suspended_organisation(buyer):
    ws = WebsocketCommunicator(application, "/ws/events/", headers=_origin())
    await ws.connect()
    error = await ws.receive_json_from(timeout=3)
    assert error["code"] == "not_authenticated"
    assert (await ws.receive_output(timeout=3))["type"] == "websocket.close"

    client = await sync_to_async(token_client)(buyer)
    await Organisation.objects.filter(pk=buyer.organisation_id).aupdate(kyc_status="suspended")
    ws = WebsocketCommunicator(application, f"/ws/events/?token={client.raw_token}", headers=_origin())
    await ws.connect()
    assert (await ws.receive_json_from(timeout=3))["code"] == "organisation_suspended"


async def test_the_public_route_still_checks_the_origin_and_the_private_one_still_reads_the_session(buyer):
    refused = WebsocketCommunicator(application, "/ws/market/", headers=[(b"origin", b"http://evil.example")])
    connected, _ = await refused.connect()
    assert not connected

    @sync_to_async
    def session_for(user):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        return session.session_key

    key = await session_for(buyer.user)
    private = WebsocketCommunicator(application, "/ws/events/",
                                    headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", f"sessionid={key}".encode())])
    connected, _ = await private.connect()
    assert connected and (await private.receive_json_from(timeout=3))["type"] == "hello"
    await private.disconnect()
