"""Every operation of the document lists the errors the shared layers answer."""

import json

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    from drf_spectacular.generators import SchemaGenerator

    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))


def operations(schema):
    for path, ops in schema["paths"].items():
        for method, operation in ops.items():
            yield path, method, operation


def test_every_operation_documents_bad_credentials_and_throttling_in_the_error_shape(schema):
    count = 0
    for path, method, operation in operations(schema):
        count += 1
        for status in ("401", "429"):
            content = operation["responses"][status]["content"]["application/json"]["schema"]
            assert content["$ref"].endswith("/ErrorOut"), (method, path, status)
    assert count >= 50
    error = schema["components"]["schemas"]["ErrorOut"]
    assert {"code", "detail", "fields"} <= set(error["properties"])


def test_lookups_document_404_and_inputs_400(schema):
    for path, method, operation in operations(schema):
        parameters = operation.get("parameters", [])
        if any(p["in"] == "path" for p in parameters):
            assert "404" in operation["responses"], (method, path)
        if method in ("post", "patch") or any(p["in"] == "query" for p in parameters):
            assert "400" in operation["responses"], (method, path)


def test_operations_that_need_credentials_document_403_and_order_entry_its_refusals(schema):
    me = schema["paths"]["/api/v1/me/"]["get"]["responses"]
    assert "403" in me
    place = schema["paths"]["/api/v1/orders/"]["post"]["responses"]
    assert {"409", "422"} <= set(place)


def test_a_views_own_error_documentation_is_kept(schema):
    # The marketplace documents its errors with examples: the shared ones do not replace them.
    create = schema["paths"]["/api/v1/assets/"]["post"]["responses"]["400"]
    assert create["description"] == "Invalid input; `fields` names what to fix."
    assert "examples" in create["content"]["application/json"]


def test_a_paged_list_documents_the_404_of_a_cursor_it_did_not_give():
    from exchange.openapi import error_statuses

    page = {"parameters": [{"in": "query", "name": "cursor", "schema": {"type": "string"}}]}
    assert "404" in error_statuses("/api/v1/orders/", "get", page, [{"TokenAuth": []}])
    assert "404" not in error_statuses("/api/v1/orders/", "get", {"parameters": []}, [{"TokenAuth": []}])
