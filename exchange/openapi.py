"""The OpenAPI document lists every error an operation can answer, in the one error shape.

Most views document only their success; the errors come from layers every view shares
(authentication and access, DRF's throttles, URL lookups, input parsing), so they are
added here, once, after drf-spectacular has built the document — unless a view documents
its own. A client generated from the document then expects the 401 it will get.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["code", "detail", "fields"],
}
DESCRIPTIONS = {
    "400": "Invalid input; `fields` names what to fix.",
    "401": "No or bad credentials (a missing, revoked or expired token).",
    "403": "The caller may not do this (scope, role, organisation status).",
    "404": "No such object (or not yours), or a page (cursor or number) the list does not have.",
    "409": "Refused in the instrument's or the order's present state.",
    "422": "Understood but refused by a business rule (funds, capacity); nothing written.",
    "429": "Too many requests; see Retry-After.",
}
WRITES = {"post", "put", "patch", "delete"}
# Order entry's business refusals (README, "Trading"): instrument state, funds and capacity.
ORDER_ENTRY = {("/api/v1/orders/", "post"), ("/api/v1/orders/{order_id}/", "patch"),
               ("/api/v1/orders/{order_id}/", "delete")}


def _needs_credentials(operation: dict, default_security: list) -> bool:
    security = operation.get("security", default_security)
    return bool(security) and {} not in security


def error_statuses(path: str, method: str, operation: dict, default_security: list) -> list[str]:
    # A bad token is refused even where none is needed: DRF authenticates before anything else.
    statuses = ["401", "429"]
    parameters = operation.get("parameters", [])
    if method in WRITES or any(p.get("in") == "query" for p in parameters):
        statuses.append("400")
    if _needs_credentials(operation, default_security):
        statuses.append("403")
    # A cursor a list did not give, or a page number it does not have (DRF's paginators answer
    # both as a missing page), is a 404 too.
    if any(p.get("in") == "path" or (p.get("in") == "query" and p.get("name") in ("cursor", "page"))
           for p in parameters):
        statuses.append("404")
    if (path, method) in ORDER_ENTRY:
        statuses += ["409", "422"]
    return statuses


def document_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: the shared error responses on every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ERROR_SCHEMA)
    default_security = result.get("security", [])
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status in error_statuses(path, method, operation, default_security):
                operation["responses"].setdefault(status, {
                    "description": DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
                })
    return result
