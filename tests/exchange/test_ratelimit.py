"""Order budgets on the fast route and WebSocket commands (THROTTLE_ORDERS)."""

import pytest

from exchange.models import Order
from exchange.ratelimit import Throttled, TokenBuckets, parse_rate
from tests.asgi import asgi_json
from tests.exchange.test_live import connect, market_setup, post


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_bucket_spends_refills_and_says_when_to_come_back():
    clock = Clock()
    buckets = TokenBuckets("6/min", clock=clock)
    for _ in range(6):
        buckets.take("a")
    with pytest.raises(Throttled) as refused:
        buckets.take("a")
    assert refused.value.status_code == 429 and refused.value.code == "throttled"
    assert refused.value.headers == {"Retry-After": "10"} and "10 s" in refused.value.detail
    buckets.take("b")  # another token has its own budget
    clock.now += 10
    buckets.take("a")
    with pytest.raises(Throttled):
        buckets.take("a")


def test_a_batch_costs_one_per_order_and_is_refused_whole():
    clock = Clock()
    buckets = TokenBuckets("100/s", clock=clock)
    buckets.take("a", 60)
    with pytest.raises(Throttled):
        buckets.take("a", 50)
    buckets.take("a", 40)  # the refused batch spent nothing
    with pytest.raises(Throttled) as refused:
        buckets.take("a", 500)  # larger than the whole budget: come back when it is full
    assert refused.value.retry_after == 1 and refused.value.headers["Retry-After"] == "1"


@pytest.mark.parametrize("rate", ["", "10", "x/min", "10/fortnight", "0/min"])
def test_a_bad_rate_is_refused_with_its_form(rate):
    with pytest.raises(ValueError, match="6000/min|at least 1"):
        parse_rate(rate)


def test_a_batch_past_the_largest_costs_no_more_than_the_largest(settings):
    # It is refused as invalid (400) once read: the budget must not answer 429 for it, nor
    # be spent on orders that could never be placed.
    from types import SimpleNamespace

    from exchange.gateway import MAX_BATCH
    from exchange.ratelimit import take_orders

    settings.THROTTLE_ORDERS = f"{MAX_BATCH + 500}/min"
    actor = SimpleNamespace(token=SimpleNamespace(id=-1), user=None)
    take_orders(actor, {"orders": [{}] * (MAX_BATCH * 2)}, batch=True)
    take_orders(actor, {"orders": [{}] * 400}, batch=True)  # what is left is still there
    with pytest.raises(Throttled):
        take_orders(actor, {"orders": [{}] * 200}, batch=True)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_fast_route_refuses_orders_over_the_tokens_budget(buyer, provider, settings, asgi_closed):
    settings.THROTTLE_ORDERS = "5/min"
    instrument, _, buyer_api, _ = await market_setup(buyer, provider)
    body = {"instrument": instrument.code, "side": "buy", "price": "19.00", "qty": 1}
    for n in range(3):
        status, _ = await post("/api/v1/orders/", {**body, "client_order_id": f"o{n}"}, buyer_api.raw_token)
        assert status == 201
    status, answer = await post("/api/v1/orders/batch/", {"orders": [
        {**body, "client_order_id": f"b{n}"} for n in range(3)]}, buyer_api.raw_token)
    assert status == 429 and answer["code"] == "throttled"
    status, answer = await post("/api/v1/orders/batch/", {"orders": [
        {**body, "client_order_id": f"b{n}"} for n in range(2)]}, buyer_api.raw_token)
    assert status == 200
    status, answer = await post("/api/v1/orders/", {**body, "client_order_id": "over"}, buyer_api.raw_token)
    assert status == 429 and set(answer) == {"code", "detail", "fields"}
    assert await Order.objects.acount() == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_fast_route_answers_429_with_retry_after(buyer, provider, settings, asgi_closed):
    settings.THROTTLE_ORDERS = "1/min"
    instrument, _, buyer_api, _ = await market_setup(buyer, provider)
    order = {"instrument": instrument.code, "side": "buy", "price": "19.00", "qty": 1}
    answers = [await asgi_json("POST", "/api/v1/orders/", order, buyer_api.raw_token) for _ in range(2)]
    assert [status for status, _, _ in answers] == [201, 429]
    assert answers[1][2]["retry-after"] == "60"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websocket_commands_share_the_budget_and_get_a_throttled_reply(buyer, provider, settings, asgi_closed):
    settings.THROTTLE_ORDERS = "3/min"
    instrument, _, buyer_api, _ = await market_setup(buyer, provider)
    status, _ = await post("/api/v1/orders/", {"instrument": instrument.code, "side": "buy", "price": "19.00",
                                               "qty": 1}, buyer_api.raw_token)
    assert status == 201
    ws = await connect(f"/ws/events/?token={buyer_api.raw_token}")
    assert (await ws.receive_json_from(timeout=3))["type"] == "hello"
    replies = []
    for n in range(3):
        await ws.send_json_to({"action": "place", "request_id": n, "instrument": instrument.code, "side": "buy",
                               "price": "19.00", "qty": 1})
        replies.append(await ws.receive_json_from(timeout=5))
    assert [r["type"] for r in replies] == ["ack", "ack", "error"]
    assert replies[2]["code"] == "throttled" and replies[2]["request_id"] == 2 and "try again in" in replies[2]["detail"]
    assert await Order.objects.acount() == 3
    await ws.disconnect()


@pytest.mark.django_db
def test_drf_limits_answer_in_the_same_shape(buyer, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import UserRateThrottle

    from tests.conftest import token_client

    cache.clear()
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {**UserRateThrottle.THROTTLE_RATES, "user": "2/min"})
    client = token_client(buyer)
    assert [client.get("/api/v1/me/").status_code for _ in range(2)] == [200, 200]
    response = client.get("/api/v1/me/")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response.json()["code"] == "throttled" and set(response.json()) == {"code", "detail", "fields"}
    cache.clear()
