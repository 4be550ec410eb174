"""Bad input on every edge answers a 4xx naming the problem — never a 500 — and writes nothing.

The edges: the DRF views (session, or a token with an Idempotency-Key), the fast order
route (tests/exchange/test_bad_input_live.py, with the WebSocket commands) and the lists.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Membership
from exchange import ledger
from exchange.gateway import InstrumentInfo, ORDER_FIELDS, OrderRequest, order_request_parse
from exchange.models import IdempotencyRecord, InboxCommand, Journal, LedgerLeg, Order
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def order(code: str, **changes) -> dict:
    return {"instrument": code, "side": "buy", "price": "20.00", "qty": 1, **changes}


def _with(**changes):
    return lambda code: json.dumps(order(code, **changes))


def _raw(field: str, fragment: str):
    """A body whose ``field`` is JSON text no Python value dumps to."""
    def body(code):
        base = order(code)
        base.pop(field, None)
        return json.dumps(base)[:-1] + f', "{field}": {fragment}}}'
    return body


# name → (the JSON text of one order, given the instrument code; the field named in the answer or None)
CASES = {
    "price_in_exponent_form": (_with(price="1e30"), "price"),
    "price_of_10000_digits": (_with(price="9" * 10_000), "price"),
    "price_as_a_10000_digit_number": (_raw("price", "9" * 10_000), None),
    "price_past_bigint": (_with(price="100000000000000000000"), "price"),
    "price_times_qty_past_bigint": (_with(price="10000000000.00", qty=10**9), "price"),
    "price_not_a_finite_number": (_raw("price", "NaN"), None),
    "qty_past_64_bits": (_raw("qty", "9" * 25), "qty"),
    "client_order_id_with_nul": (_with(client_order_id="a\x00b"), "client_order_id"),
    "client_order_id_lone_surrogate": (_with(client_order_id="\ud800"), "client_order_id"),
    "instrument_with_nul": (_with(instrument="AI80\x00"), "instrument"),
    "key_with_nul": (_with(**{"x\x00": 1}), None),
    "expires_at_month_13": (_with(tif="GTD", expires_at="2026-13-45T99:00:00Z"), "expires_at"),
    "expires_at_offset_99_hours": (_with(tif="GTD", expires_at="2030-01-01T00:00:00+99:00"), "expires_at"),
    "expires_at_year_9999": (_with(tif="GTD", expires_at="9999-12-31T23:59:59Z"), "expires_at"),
    "expires_at_past_year_9999_in_utc": (_with(tif="GTD", expires_at="9999-12-31T23:59:59-14:00"), "expires_at"),
    "tif_object": (_with(tif={}), "tif"),
    "side_list": (_with(side=["buy"]), "side"),
    "nested_20000_deep": (_raw("note", "[" * 20_000 + "]" * 20_000), None),
}


def written() -> tuple:
    return (Order.objects.count(), InboxCommand.objects.count(), Journal.objects.count(), LedgerLeg.objects.count(),
            IdempotencyRecord.objects.count())


def assert_refused(response, field):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert body["code"] == "invalid" and body["detail"]
    if field:
        assert any(key.split(".")[-1] == field for key in body["fields"]), body


@pytest.fixture
def trader(funded_buyer):
    return funded_buyer


def session_client(membership: Membership):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(membership.user)
    return client


@pytest.mark.parametrize("edge", ["session", "idempotency_key"])
@pytest.mark.parametrize("case", CASES)
def test_a_bad_order_on_the_drf_path_is_400_and_writes_nothing(instrument, trader, case, edge):
    body, field = CASES[case]
    client = session_client(trader) if edge == "session" else token_client(trader)
    headers = {"HTTP_IDEMPOTENCY_KEY": f"key-{case}"} if edge == "idempotency_key" else {}
    before = written()
    response = client.post("/api/v1/orders/", body(instrument.code), content_type="application/json", **headers)
    assert_refused(response, field)
    assert written() == before
    assert client.get("/api/v1/orders/").status_code == 200


@pytest.mark.parametrize("case", CASES)
def test_a_bad_order_in_a_drf_batch_is_refused_and_writes_nothing(instrument, trader, case):
    body, field = CASES[case]
    client = session_client(trader)
    before = written()
    response = client.post("/api/v1/orders/batch/", '{"orders": [' + body(instrument.code) + "]}",
                           content_type="application/json")
    if response.status_code == 200:  # refused item by item
        (result,) = response.json()["results"]
        assert result["status"] == "rejected" and result["code"] == "invalid" and field in result["fields"], result
    else:
        assert_refused(response, None)
    assert written() == before


def test_a_gtd_order_expires_no_later_than_gate_closure(instrument, trader):
    client = token_client(trader)
    gate = instrument.gate_closure_at
    late = client.post("/api/v1/orders/", order(instrument.code, tif="GTD", expires_at=(gate + timedelta(seconds=1)).isoformat()),
                       format="json")
    assert late.status_code == 400 and "expires_at" in late.data["fields"]
    on_time = client.post("/api/v1/orders/", order(instrument.code, tif="GTD", expires_at=gate.isoformat()), format="json")
    assert on_time.status_code == 201, on_time.data
    assert client.get("/api/v1/orders/").status_code == 200


AMEND_VALUES = [
    {"price": "1e30"}, {"price": "9" * 10_000}, {"price": "100000000000000000000"}, {"price": {}}, {"price": []},
    {"price": True}, {"price": "NaN"}, {"price": "\x00"}, {"qty": {}}, {"qty": 10**30}, {"qty": "1"}, {"qty": 1.5},
    {"price": "20.00", "note": "\x00"},
]


@pytest.mark.parametrize("changes", AMEND_VALUES, ids=lambda c: json.dumps(c)[:40])
def test_a_bad_amendment_is_400_and_writes_nothing(instrument, trader, changes):
    client = token_client(trader)
    placed = client.post("/api/v1/orders/", order(instrument.code, qty=10), format="json")
    assert placed.status_code == 201
    before = written()
    response = client.patch(f"/api/v1/orders/{placed.data['id']}/", json.dumps(changes), content_type="application/json")
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response.json()["code"] == "invalid"
    assert written() == before


def test_amending_a_bid_to_a_price_over_the_maximum_is_refused_before_any_hold(instrument, trader):
    from exchange.gateway import MAX_PRICE_FEN
    from exchange.money import cny

    client = token_client(trader)
    placed = client.post("/api/v1/orders/", order(instrument.code, qty=1000), format="json")
    held = ledger.balances(organisation=trader.organisation)["held"]
    response = client.patch(f"/api/v1/orders/{placed.data['id']}/", {"price": cny(MAX_PRICE_FEN + 100)}, format="json")
    assert response.status_code == 400 and "price" in response.data["fields"]
    assert ledger.balances(organisation=trader.organisation)["held"] == held


@pytest.mark.parametrize("url", [
    "/api/v1/instruments/?compute_class=%00",
    "/api/v1/instruments/?state=%00",
    "/api/v1/instruments/?hub=a%00b",
    "/api/v1/instruments/%00/",
    "/api/v1/instruments/%00/depth/",
    "/api/v1/price-index/?hub=%00",
    "/api/v1/orders/?instrument=%00",
    "/api/v1/orders/?status=%00",
    "/api/v1/orders/?%00=1",
    "/api/v1/hubs/?city=%00",
])
def test_a_nul_in_the_path_or_a_query_parameter_is_400_on_the_api(trader, url):
    response = token_client(trader).get(url)
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("url", ["/markets/?class=%00", "/markets/?hub=%00&state=open", "/markets/%00/"])
def test_a_nul_in_a_page_url_is_400(trader, client, url):
    client.force_login(trader.user)
    assert client.get(url).status_code == 400


# order_request_parse on its own: every JSON type in every field is an order or a refusal.
JSON_VALUES = [None, True, False, 0, -1, 1, 10**30, 1.5, -0.0, 1e308, "", "x", "buy", "GTD", "1e30", "1" * 5000, "\x00",
               "\ud800", [], [1], ["buy"], {}, {"a": 1}]


def test_order_request_parse_answers_every_json_type_in_every_field_with_an_order_or_a_refusal(buyer):
    from accounts.access import actor_from_user
    from exchange.errors import AppError

    actor = actor_from_user(buyer.user)
    info = InstrumentInfo(id=1, code="AI80.NX.2030-01-01", tick_fen=1, lot_scu_h=1,
                          gate_closure_at=timezone.now() + timedelta(days=1))
    lookup = {info.code: info}.get
    bases = [order(info.code), order(info.code, tif="GTD", expires_at=(timezone.now() + timedelta(hours=1)).isoformat()),
             {"instrument": info.code, "side": "sell", "type": "market", "qty": 1}]
    failures = []
    for base in bases:
        for field in sorted(ORDER_FIELDS | {"unknown"}):
            for value in JSON_VALUES:
                try:
                    result = order_request_parse({**base, field: value}, actor=actor, lookup=lookup)
                except AppError as exc:
                    assert exc.status_code == 400 and exc.fields, (field, value)
                except Exception as exc:  # noqa: BLE001 — any other error is what this test looks for
                    failures.append(f"{field}={value!r:.40}: {type(exc).__name__}: {exc}"[:200])
                else:
                    assert isinstance(result, OrderRequest)
    assert failures == []


@pytest.mark.parametrize("method", ["get", "delete", "patch"])
def test_an_order_id_past_bigint_is_404(trader, method):
    response = getattr(token_client(trader), method)("/api/v1/orders/99999999999999999999999/", {"qty": 1}, format="json")
    assert response.status_code == 404, (response.status_code, response.content[:300])


@pytest.mark.parametrize("body", ["[1]", '"price"', "null", "1"])
def test_an_amendment_that_is_not_an_object_is_400(instrument, trader, body):
    client = token_client(trader)
    placed = client.post("/api/v1/orders/", order(instrument.code, qty=10), format="json")
    response = client.patch(f"/api/v1/orders/{placed.data['id']}/", body, content_type="application/json")
    assert response.status_code == 400, (response.status_code, response.content[:300])


def test_the_instrument_directory_answers_unknown_for_a_code_postgresql_could_not_take(instrument):
    from exchange.gateway import instruments

    assert instruments.get("AI80\x00") is None and instruments.get("\ud800") is None and instruments.get("A" * 10_000) is None
    assert instruments.get(instrument.code).id == instrument.id
