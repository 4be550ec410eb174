"""The console's front door and live stream: regulators in, everyone else out."""

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from exchange.asgi import application
from supervision.events import CONSOLE_GROUP
from tests.conftest import token_client
from tests.factories import MembershipFactory


@pytest.fixture
def operator():
    return MembershipFactory(organisation__kind="operator", role="viewer")


@pytest.mark.django_db
def test_only_regulators_open_the_console(client, regulator, buyer, provider, operator, admin_user):
    assert client.get("/supervision/").status_code == 302  # sign in first
    for member in (buyer, provider, operator):
        client.force_login(member.user)
        response = client.get("/supervision/")
        assert response.status_code == 403 and b"for the regulator" in response.content
    client.force_login(admin_user)  # a superuser without a regulator membership is not a regulator
    assert client.get("/supervision/").status_code == 403
    client.force_login(regulator.user)
    response = client.get("/supervision/")
    assert response.status_code == 200 and b"Supervision console" in response.content


@pytest.mark.django_db
def test_the_overview_counts_the_work_waiting(client, regulator, django_assert_max_num_queries):
    from exchange.models import Instrument
    from supervision.models import Alert, Rule
    from supervision.surveillance.params import rules_ensure
    from tests.exchange.conftest import make_instrument
    from tests.supervision.kyc_helpers import applicant

    applicant("Waiting One")
    applicant("Waiting Two")
    halted = make_instrument()
    Instrument.objects.filter(pk=halted.pk).update(state=Instrument.State.HALTED)
    rules_ensure()
    wash = Rule.objects.get(code="wash_same_owner")
    for n, (severity, state) in enumerate((("high", "open"), ("medium", "open"), ("high", "under_review"),
                                            ("high", "closed"))):
        Alert.objects.create(rule=wash, key=f"k{n}", severity=severity, state=state, instrument=halted,
                             evidence={"figures": {"trades": 1, "volume_scu_h": 5}})
    client.force_login(regulator.user)
    with django_assert_max_num_queries(14):
        page = client.get("/supervision/")
    context = page.context
    assert (context["pending_kyc"], context["alerts"]["open"], context["alerts"]["under_review"]) == (2, 2, 1)
    assert (context["alerts"]["high"], context["instruments"]["halted"], context["open_disputes"]) == (1, 1, 0)
    assert [row["alert"].key for row in context["latest"]] == ["k2", "k1", "k0"]  # closed ones left out


@pytest_asyncio.fixture
async def _close_connections():
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def outsider(request, buyer, provider, operator, regulator):
    """Someone who is not a regulator (None: anonymous), and the scopes of their token."""
    return {"anonymous": (None, ()), "buyer": (buyer, ("read", "trade")),
            "provider": (provider, ("read", "trade", "provide")), "operator viewer": (operator, ("read",)),
            "regulator's viewer": (MembershipFactory(organisation=regulator.organisation, role="viewer"), ("read",)),
            }[request.param]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("outsider", ["anonymous", "buyer", "provider", "operator viewer", "regulator's viewer"],
                         indirect=True)
async def test_the_console_stream_refuses_everyone_but_regulators(outsider, _close_connections):
    from channels.layers import get_channel_layer

    member, scopes = outsider
    query = f"?token={(await sync_to_async(token_client)(member, scopes=scopes)).raw_token}" if member else ""
    refused = WebsocketCommunicator(application, f"/ws/supervision/{query}", headers=[(b"origin", b"http://127.0.0.1")])
    await refused.connect()
    told = await refused.receive_json_from(timeout=3)
    closed = await refused.receive_output(timeout=3)
    expected = ("not_authenticated", 4401) if member is None else ("not_regulator", 4403)
    assert (told["type"], told["code"]) == ("error", expected[0])
    assert (closed["type"], closed["code"]) == ("websocket.close", expected[1])
    # Not in the console's group: an alert sent now does not reach it.
    await get_channel_layer().group_send(CONSOLE_GROUP, {"type": "relay", "events": [{"type": "alert", "id": 1}]})
    assert await refused.receive_nothing(timeout=0.3)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_console_stream_relays_to_regulators(regulator, _close_connections):
    from channels.layers import get_channel_layer

    origin = [(b"origin", b"http://127.0.0.1")]
    token = (await sync_to_async(token_client)(regulator, scopes=("read",))).raw_token
    ws = WebsocketCommunicator(application, f"/ws/supervision/?token={token}", headers=origin)
    connected, _ = await ws.connect()
    assert connected and (await ws.receive_json_from(timeout=3))["type"] == "hello"
    await get_channel_layer().group_send(CONSOLE_GROUP, {"type": "relay", "events": [{"type": "alert", "id": 1}]})
    assert await ws.receive_json_from(timeout=3) == {"type": "alert", "id": 1}
    await ws.disconnect()
