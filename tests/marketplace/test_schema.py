import json
import re

import pytest
from openapi_spec_validator import validate

from exchange.urls import api_v1

pytestmark = pytest.mark.django_db


def _paths(patterns, prefix="/api/v1/"):
    """Every URL under /api/v1/ with its parameters blanked (``<int:pk>`` → ``{}``)."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            yield from _paths(pattern.url_patterns, route)
        else:
            yield re.sub(r"<[^>]+>", "{}", route)


def _blank(path: str) -> str:
    # drf-spectacular names a ``pk`` parameter ``id``; only the shape of the path matters.
    return re.sub(r"{[^}]+}", "{}", path)


@pytest.fixture(scope="module")
def schema():
    """The document /api/schema/ serves (generated once: it takes a few seconds)."""
    from drf_spectacular.generators import SchemaGenerator

    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))


def test_the_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200 and "/api/v1/listings/" in response.json()["paths"]


def test_the_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_every_api_v1_url_is_documented(schema):
    expected = set(_paths(api_v1))
    assert "/api/v1/listings/{}/withdraw/" in expected
    assert expected - {_blank(path) for path in schema["paths"]} == set()


def test_marketplace_writes_have_request_examples_and_error_responses(schema):
    marketplace_tags = {"Catalogue", "Device types and attestations", "Assets", "Listings", "Provenance"}
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not marketplace_tags & set(operation.get("tags", [])):
                continue
            checked += 1
            assert operation.get("summary"), (method, path)
            if method in {"post", "patch"} and "requestBody" in operation:
                body = operation["requestBody"]["content"]["application/json"]
                assert body.get("examples"), (method, path)
            errors = [status for status in operation["responses"] if status.startswith("4")]
            assert errors, (method, path)
            for status in errors:
                ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorOut"), (method, path, status)
    assert checked >= 25
