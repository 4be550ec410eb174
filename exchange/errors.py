"""One application error type, and the API's mapping of every error to one shape.

Services raise :class:`AppError` for business outcomes (a code a program can branch on and
a message a person can act on). The API answers every error as
``{"code": ..., "detail": ..., "fields": {...}}`` with a 4xx status.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response


class AppError(Exception):
    """A business outcome that stops the action: nothing was changed."""

    def __init__(self, code: str, detail: str, *, fields: dict | None = None, status_code: int = 400,
                 headers: dict | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = fields or {}
        self.status_code = status_code
        self.headers = headers or {}

    def as_dict(self) -> dict:
        return {"code": self.code, "detail": self.detail, "fields": self.fields}


class NotFound(AppError):
    def __init__(self, detail: str = "Not found.", *, code: str = "not_found"):
        super().__init__(code, detail, status_code=404)


class Forbidden(AppError):
    def __init__(self, detail: str, *, code: str = "forbidden"):
        super().__init__(code, detail, status_code=403)


def _flatten(detail) -> dict:
    """DRF's nested error detail → {"field": "message; message"}."""
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub_key, sub_value in _flatten(value).items():
                    out[f"{key}.{sub_key}"] = sub_value
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for index, item in enumerate(value):
                    for sub_key, sub_value in _flatten(item).items():
                        out[f"{key}[{index}].{sub_key}"] = sub_value
            else:
                out[key] = " ".join(str(v) for v in (value if isinstance(value, list) else [value]))
        return out
    return {"non_field_errors": " ".join(str(v) for v in detail) if isinstance(detail, list) else str(detail)}


def _response(code: str, detail: str, fields: dict, status_code: int, headers: dict | None = None) -> Response:
    return Response({"code": code, "detail": detail, "fields": fields}, status=status_code, headers=headers)


def api_exception_handler(exc, context):
    if isinstance(exc, AppError):
        return _response(exc.code, exc.detail, exc.fields, exc.status_code, exc.headers)
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = _flatten(exc.detail)
        summary = "; ".join(f"{k}: {v}" if k != "non_field_errors" else v for k, v in fields.items())
        return _response("invalid", f"The request is not valid. {summary}", fields, status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, drf_exceptions.APIException):
        headers = {}
        if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        return _response(code, str(exc.detail), {}, exc.status_code, headers)
    return None
