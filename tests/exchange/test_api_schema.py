"""The OpenAPI document against what the API answers: pages, credentials, statuses."""

import json
import re

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from exchange.models import Order
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
    validate(document)
    return document


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # These tests call every operation: they must neither meet other tests' request counts
    # nor leave theirs behind.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def documented_body(schema, operation, status):
    return resolve(schema, operation["responses"][status]["content"]["application/json"]["schema"])


@pytest.fixture
def objects(instrument, listing, asset, device_type, funded_buyer, provider):
    """An object of every kind a documented path names, so every operation can be called."""
    from marketplace.models import Attestation
    from settlement.models import Dispute
    from tests.settlement.parties import allocation_make, dispute_make

    allocation = allocation_make(provider=provider, buyer=funded_buyer)

    client = token_client(funded_buyer)
    order_id = client.post("/api/v1/orders/", {"instrument": instrument.code, "side": "buy", "price": "20.00",
                                               "qty": 1}, format="json").json()["id"]
    token_id = client.get("/api/v1/tokens/").json()[0]["id"]
    return {
        "/api/v1/instruments/{code}/": instrument.code, "/api/v1/hubs/{code}/": "NX", "/api/v1/classes/{code}/": "AI80",
        "/api/v1/clusters/{code}/": "NX-ZW", "/api/v1/device-types/{id}/": device_type.id,
        "/api/v1/attestations/{id}/": Attestation.objects.filter(device_type=device_type).first().id,
        "/api/v1/listings/{id}/": listing.id, "/api/v1/assets/{id}/": asset.id, "/api/v1/orders/{order_id}/": order_id,
        "/api/v1/tokens/{token_id}/": token_id,
        "/api/v1/settlement/allocations/{allocation_id}/": allocation.id,
        "/api/v1/settlement/disputes/{dispute_id}/": dispute_make(allocation, by=funded_buyer).id,
        "/api/v1/supervision/instruments/{code}/": instrument.code, "/api/v1/supervision/classes/{code}/": "AI80",
        "/api/v1/supervision/hubs/{code}/": "NX",
        "/api/v1/supervision/participants/{organisation_id}/": funded_buyer.organisation_id,
        "/api/v1/supervision/disputes/{dispute_id}/": Dispute.objects.get(allocation=allocation).id,
        "/api/v1/supervision/replay/{code}/": instrument.code,
        "/api/v1/supervision/provenance/assets/{asset_id}/": asset.id,
        "/api/v1/supervision/alerts/{alert_id}/": _alert().id, "/api/v1/supervision/rules/{code}/": "spoofing",
        "/api/v1/funds/requests/{request_id}/": client.post("/api/v1/funds/requests/", {
            "direction": "deposit", "amount": "10.00"}, format="json").json()["id"],
    }


def _alert():
    from supervision.models import Alert, Rule
    from supervision.surveillance.params import rules_ensure

    rules_ensure()
    return Alert.objects.create(rule=Rule.objects.get(code="hoarding"), key="schema", severity="medium",
                                evidence={"figures": {}, "orders": [], "trades": []})


def fill(path: str, objects: dict) -> str:
    for prefix, value in objects.items():
        parameter = prefix[prefix.index("{"):]
        if path.startswith(prefix):
            return path.replace(parameter.rstrip("/"), str(value), 1)
    assert "{" not in path, f"no object to fill {path} with"
    return path


def test_every_operation_is_documented_as_needing_credentials_exactly_when_it_does(schema, objects):
    anonymous, public_seen = APIClient(), []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            response = getattr(anonymous, method)(fill(path, objects), {}, format="json")
            if operation.get("security") == []:
                public_seen.append((method, path))
                assert response.status_code == 200, (method, path, response.status_code)
            else:
                assert response.status_code in (401, 403), (method, path, response.status_code)
                assert operation["security"], (method, path)
    assert {("get", "/api/v1/instruments/"), ("get", "/api/v1/instruments/{code}/depth/"),
            ("get", "/api/v1/instruments/{code}/trades/"), ("get", "/api/v1/instruments/{code}/candles/"),
            ("get", "/api/v1/price-index/"), ("get", "/api/v1/provenance/verify/"),
            ("get", "/api/v1/attestations/{id}/verify/"), ("get", "/api/v1/listings/")} <= set(public_seen)


def test_every_list_is_documented_as_the_page_or_array_it_answers(schema, objects, provider, regulator):
    client = token_client(provider, scopes=("read", "trade", "provide"))
    console = token_client(regulator, scopes=("read",))  # the supervision console's reads are the regulator's
    pages = 0
    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        reader = console if path.startswith("/api/v1/supervision/") and not path.endswith(".csv") else client
        response = reader.get(fill(path, objects))
        if response.status_code != 200:
            assert response.status_code in (403, 404), (path, response.status_code)  # someone else's object
            continue
        body, documented = response.json(), documented_body(schema, operations["get"], "200")
        if isinstance(body, list):
            assert documented["type"] == "array", path
        else:
            assert documented["type"] == "object", path
            if "results" in body and "next" in body:
                pages += 1
                assert {"next", "previous", "results"} <= set(documented["properties"]), path
                assert documented["properties"]["results"]["type"] == "array", path
                names = {p["name"] for p in operations["get"].get("parameters", ())}
                assert "cursor" in names or "page" in names, path
            else:
                assert "results" not in documented.get("properties", {}), path
    assert pages >= 12


def test_deletes_answer_the_status_and_body_they_document(schema, objects, funded_buyer):
    client = token_client(funded_buyer)
    orders = Order.objects.count()
    for path, query in (("/api/v1/tokens/{token_id}/", None), ("/api/v1/orders/{order_id}/", None)):
        operation = schema["paths"][path]["delete"]
        response = client.delete(fill(path, objects))
        documented = [status for status in operation["responses"] if status.startswith("2")]
        assert [str(response.status_code)] == documented, (path, response.status_code, documented)
        if documented != ["204"]:
            body = documented_body(schema, operation, documented[0])
            assert set(response.json()) == set(body["properties"]), path
    assert Order.objects.count() == orders  # cancelled, not deleted


def test_the_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.") and re.match(r"^\d+\.\d+\.\d+$", schema["info"]["version"])
