"""Idempotency-Key on order entry: a retry returns the first response, another body is a 409."""

import pytest
from django.urls import URLPattern, URLResolver

from exchange.models import InboxCommand, Order
from exchange.urls import api_v1
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def bid(instrument, price="20.00", qty=10, **extra):
    return {"instrument": instrument.code, "side": "buy", "price": price, "qty": qty, **extra}


def test_a_single_order_retried_with_its_key_and_no_client_order_id_is_placed_once(instrument, funded_buyer):
    client = token_client(funded_buyer)
    first = client.post("/api/v1/orders/", bid(instrument), format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    again = client.post("/api/v1/orders/", bid(instrument), format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    assert first.status_code == 201 and again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replay"] == "true"
    assert Order.objects.count() == 1 and InboxCommand.objects.count() == 1


def test_a_single_order_key_reused_with_another_body_is_409(instrument, funded_buyer):
    client = token_client(funded_buyer)
    assert client.post("/api/v1/orders/", bid(instrument), format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    other = client.post("/api/v1/orders/", bid(instrument, qty=20), format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_a_refused_order_is_not_remembered_under_its_key(instrument, funded_buyer):
    client = token_client(funded_buyer)
    refused = client.post("/api/v1/orders/", bid(instrument, qty=10**8), format="json", HTTP_IDEMPOTENCY_KEY="big")
    assert refused.status_code == 422
    retry = client.post("/api/v1/orders/", bid(instrument), format="json", HTTP_IDEMPOTENCY_KEY="big")
    assert retry.status_code == 201 and Order.objects.count() == 1


def test_a_batch_retried_with_its_key_is_placed_once_and_another_body_is_409(instrument, funded_buyer):
    client = token_client(funded_buyer)
    body = {"orders": [bid(instrument), bid(instrument, price="19.00")]}
    first = client.post("/api/v1/orders/batch/", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    again = client.post("/api/v1/orders/batch/", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert [r["status"] for r in first.json()["results"]] == ["accepted", "accepted"]
    other = client.post("/api/v1/orders/batch/", {"orders": [bid(instrument)]}, format="json",
                        HTTP_IDEMPOTENCY_KEY="batch-1")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 2


def _views(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            yield str(pattern.pattern), getattr(pattern.callback, "view_class", None)


def test_every_api_post_honours_an_idempotency_key():
    posts = [(route, view) for route, view in _views(api_v1) if view is not None and hasattr(view, "post")]
    assert len(posts) >= 10
    missing = [route for route, view in posts if not getattr(view.post, "honours_idempotency_key", False)]
    assert missing == []
