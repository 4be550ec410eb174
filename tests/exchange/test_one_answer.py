"""One answer whatever the path: the fast ASGI route, the DRF views and WebSocket commands
give the same body, the same refusals and the same codes for the same order."""

from datetime import timedelta

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils import timezone

from exchange import ledger
from exchange.asgi import application
from exchange.models import Instrument, Order
from tests.asgi import asgi_json
from tests.conftest import token_client
from tests.exchange.conftest import list_capacity, make_instrument

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def _close_connections():
    from exchange.asgi import order_entry

    # Django's ASGI handler runs each request's view in a thread of its own: its connection
    # must close when the request finishes, or it outlives the test.
    database = connections.settings["default"]
    max_age, database["CONN_MAX_AGE"] = database.get("CONN_MAX_AGE", 0), 0
    yield
    database["CONN_MAX_AGE"] = max_age
    await order_entry.aclose()
    await sync_to_async(connections.close_all)()


@sync_to_async
def market(buyer, provider, state=Instrument.State.CONTINUOUS):
    from exchange.models import FeeTier

    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    instrument = make_instrument(state=state)
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=500)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    return instrument, token_client(buyer), token_client(provider, scopes=("read", "trade", "provide"))


def drf_get(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.content
    return response.json()


def drf_post(client, path, body, **extra):
    response = client.post(path, body, format="json", **extra)
    return response.status_code, response.json()


ORDERS = [
    {"side": "buy", "price": "20.00", "qty": 5},
    {"side": "buy", "price": "20.10", "qty": 3, "tif": "GTD", "post_only": True},
    {"side": "sell", "price": "21.00", "qty": 7},
    {"side": "buy", "type": "market", "qty": 2, "protect_ticks": 5},
]


@pytest.mark.parametrize("order", ORDERS)
async def test_the_fast_route_answers_an_order_exactly_as_the_order_reads_afterwards_and_as_drf_does(
        buyer, provider, order):
    instrument, buyer_api, seller_api = await market(buyer, provider)
    client = seller_api if order["side"] == "sell" else buyer_api
    body = {"instrument": instrument.code, **order}
    if body.get("tif") == "GTD":
        body["expires_at"] = (timezone.now() + timedelta(hours=3)).isoformat()

    status, fast, headers = await asgi_json("POST", "/api/v1/orders/", {**body, "client_order_id": "fast"}, client.raw_token)
    assert status == 201 and "idempotent-replay" not in headers, fast
    stored = await sync_to_async(drf_get)(client, f"/api/v1/orders/{fast['id']}/")
    assert fast == stored  # every field, value and format, from the one statement's results

    status, slow = await sync_to_async(drf_post)(client, "/api/v1/orders/", {**body, "client_order_id": "drf"})
    assert status == 201, slow
    assert list(fast) == list(slow)
    differ = {"id", "client_order_id", "created_at", "updated_at"}
    assert {k: v for k, v in fast.items() if k not in differ} == {k: v for k, v in slow.items() if k not in differ}

    status, duplicate, _ = await asgi_json("POST", "/api/v1/orders/", {**body, "client_order_id": "fast"}, client.raw_token)
    assert status == 200 and duplicate == stored
    status, drf_duplicate = await sync_to_async(drf_post)(client, "/api/v1/orders/", {**body, "client_order_id": "fast"})
    assert status == 200 and drf_duplicate == duplicate


async def test_a_token_order_with_an_idempotency_key_through_asgi_is_placed_once(buyer, provider):
    instrument, buyer_api, _ = await market(buyer, provider)
    body = {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1}
    key = [(b"idempotency-key", b"asgi-1")]
    status, first, _ = await asgi_json("POST", "/api/v1/orders/", body, buyer_api.raw_token, key)
    assert status == 201, first
    status, again, headers = await asgi_json("POST", "/api/v1/orders/", body, buyer_api.raw_token, key)
    assert status == 201 and again == first and headers.get("idempotent-replay") == "true"
    status, other, _ = await asgi_json("POST", "/api/v1/orders/", {**body, "qty": 2}, buyer_api.raw_token, key)
    assert status == 409 and other["code"] == "idempotency_key_reused"
    assert await Order.objects.acount() == 1


@pytest.mark.parametrize("credential, code, http_status", [
    ("revoked", "token_revoked", 401), ("expired", "token_expired", 401),
    ("deactivated", "user_inactive", 401), ("read_only", "scope_missing", 403),
])
async def test_a_batch_whose_credentials_no_longer_hold_is_refused_whole_on_both_paths(buyer, provider, credential, code,
                                                                                http_status):
    from accounts.models import ApiToken, User

    instrument, buyer_api, _ = await market(buyer, provider)
    batch = {"orders": [{"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1},
                        {"instrument": instrument.code, "side": "sell", "price": "oops", "qty": 1}]}
    # Warm the fast route's token cache: the credential dies after the route first saw it.
    status, _, _ = await asgi_json("POST", "/api/v1/orders/batch/", {"orders": batch["orders"][:1]}, buyer_api.raw_token)
    assert status == 200
    if credential == "deactivated":
        await User.objects.filter(pk=buyer.user_id).aupdate(is_active=False)
    else:
        change = {"revoked": {"revoked_at": timezone.now()}, "expired": {"expires_at": timezone.now()},
                  "read_only": {"scopes": ["read"]}}[credential]
        await ApiToken.objects.filter(membership=buyer).aupdate(**change)
    status, fast, _ = await asgi_json("POST", "/api/v1/orders/batch/", batch, buyer_api.raw_token)
    assert status == http_status and fast["code"] == code, fast
    status, drf = await sync_to_async(drf_post)(buyer_api, "/api/v1/orders/batch/", batch)
    assert status == http_status, drf
    status, keyed, _ = await asgi_json("POST", "/api/v1/orders/batch/", batch, buyer_api.raw_token, [(b"idempotency-key", b"b")])
    assert status == http_status
    assert await Order.objects.acount() == 1


@pytest.mark.parametrize("state", [Instrument.State.PRE_OPEN, Instrument.State.AUCTION])
@pytest.mark.parametrize("tif", ["IOC", "FOK"])
async def test_ioc_and_fok_are_refused_at_entry_during_an_auction_on_every_path(buyer, provider, state, tif):
    instrument, buyer_api, _ = await market(buyer, provider, state=state)
    order = {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1, "tif": tif}
    status, fast, _ = await asgi_json("POST", "/api/v1/orders/", order, buyer_api.raw_token)
    assert status == 409 and fast["code"] == "auction_in_progress", fast
    status, drf = await sync_to_async(drf_post)(buyer_api, "/api/v1/orders/", order)
    assert status == 409 and drf["code"] == "auction_in_progress"
    status, batch, _ = await asgi_json("POST", "/api/v1/orders/batch/", {"orders": [order, {**order, "tif": "GTC"}]},
                                       buyer_api.raw_token)
    assert status == 200 and [r["status"] for r in batch["results"]] == ["rejected", "accepted"]
    assert batch["results"][0]["code"] == "auction_in_progress"
    ws = WebsocketCommunicator(application, f"/ws/events/?token={buyer_api.raw_token}")
    assert (await ws.connect())[0]
    await ws.receive_json_from(timeout=3)
    await ws.send_json_to({"action": "place", "request_id": 1, **order})
    reply = await ws.receive_json_from(timeout=5)
    assert reply["type"] == "error" and reply["code"] == "auction_in_progress"
    await ws.disconnect()
    assert await Order.objects.acount() == 1  # only the GTC order rests for the auction


async def test_a_token_websocket_without_origin_connects_and_a_foreign_origin_is_refused(buyer, provider):
    _, buyer_api, _ = await market(buyer, provider)
    path = f"/ws/events/?token={buyer_api.raw_token}"
    bot = WebsocketCommunicator(application, path)  # a program, not a browser: no Origin
    connected, _ = await bot.connect()
    assert connected and (await bot.receive_json_from(timeout=3))["type"] == "hello"
    await bot.disconnect()
    public = WebsocketCommunicator(application, "/ws/market/")
    assert (await public.connect())[0]
    await public.disconnect()
    own = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1:8000")])
    assert (await own.connect())[0]
    await own.disconnect()
    for target in (path, "/ws/market/"):
        foreign = WebsocketCommunicator(application, target, headers=[(b"origin", b"https://evil.example")])
        connected, _ = await foreign.connect()
        assert not connected


async def test_a_batch_answers_the_same_results_on_the_fast_route_and_through_drf(buyer, provider):
    instrument, buyer_api, _ = await market(buyer, provider)

    def batch(tag):
        return {"orders": [
            {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1, "client_order_id": f"{tag}-1"},
            {"instrument": instrument.code, "side": "buy", "price": "20.001", "qty": 1},
            {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 10**8, "client_order_id": f"{tag}-2"},
            {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1, "client_order_id": f"{tag}-1"},
        ]}

    status, fast, _ = await asgi_json("POST", "/api/v1/orders/batch/", batch("fast"), buyer_api.raw_token)
    assert status == 200
    status, slow = await sync_to_async(drf_post)(buyer_api, "/api/v1/orders/batch/", batch("drf"))
    assert status == 200

    def comparable(results):
        return [{k: v for k, v in r.items() if k not in ("order_id", "client_order_id")} for r in results]

    assert comparable(fast["results"]) == comparable(slow["results"])
    assert [r["status"] for r in fast["results"]] == ["accepted", "rejected", "rejected", "duplicate"]
    assert [set(r) for r in fast["results"]] == [set(r) for r in slow["results"]]
