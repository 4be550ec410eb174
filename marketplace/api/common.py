"""What every marketplace endpoint shares: permissions, pagination, throttling, error docs."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import permissions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

from accounts.authentication import ScopedPermission
from exchange.errors import AppError
from marketplace.periods import china_midnight


class PublicReadPermission(ScopedPermission):
    """Anyone may read (the catalogue, attestations, provenance); writing needs a signed-in actor."""

    anonymous_reads = True  # exchange.schema documents its reads as needing no credentials

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS and not (request.user and request.user.is_authenticated):
            return True
        return super().has_permission(request, view)


class WriteThrottle(UserRateThrottle):
    """A separate, tighter budget for writes (``THROTTLE_MARKETPLACE_WRITE``, default 300/min)."""

    scope = "marketplace_write"

    def get_rate(self):
        return settings.THROTTLE_MARKETPLACE_WRITE

    def allow_request(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        return super().allow_request(request, view)


THROTTLES = [*api_settings.DEFAULT_THROTTLE_CLASSES, WriteThrottle]


class Pagination(CursorPagination):
    """Cursor pages in the view's ``ordering`` (a view may set it per request)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"

    def get_ordering(self, request, queryset, view):
        return tuple(getattr(view, "ordering", (self.ordering,)))


def paginated(view, request, queryset, serializer_class, context=None):
    """A cursor page of ``queryset``; ``context`` may be a function of the page's objects.

    The view names its ``pagination_class`` (``Pagination``), which the schema documents.
    """
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    context = context(page) if callable(context) else (context or {})
    return paginator.get_paginated_response(serializer_class(page, many=True, context=context).data)


class ErrorOut(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    fields = serializers.DictField(child=serializers.CharField())


def errors(*statuses: int, example: tuple[str, str, dict] | None = None) -> dict:
    """OpenAPI responses for the error statuses an endpoint can return, in the shared shape."""
    descriptions = {
        400: "Invalid input; `fields` names what to fix.",
        401: "No or bad credentials.",
        403: "The caller may not do this (scope, role, suspension, or someone else's object).",
        404: "No such object, or not yours.",
        409: "Conflicts with existing data, or an Idempotency-Key reused with another body.",
        422: "Understood but refused by a business rule (nothing written).",
        429: "Too many requests; see Retry-After.",
    }
    out = {}
    for status in statuses:
        examples = []
        if example and status == 400:
            code, detail, fields = example
            examples = [OpenApiExample(code, value={"code": code, "detail": detail, "fields": fields}, status_codes=[400])]
        out[status] = OpenApiResponse(ErrorOut, description=descriptions[status], examples=examples)
    return out


class ChinaDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time, or a date meaning 00:00 China time that day; years 2000–2999."""

    default_error_messages = {"out_of_range": "Use a year from 2000 to 2999."}

    def to_internal_value(self, value):
        if isinstance(value, str) and len(value.strip()) == 10:
            try:
                day = date.fromisoformat(value.strip())
            except ValueError:
                day = None
            if day is not None:
                if not 2000 <= day.year <= 2999:
                    self.fail("out_of_range")
                return china_midnight(day)
        moment = super().to_internal_value(value)
        # Far-off years overflow once shifted to China time; no window is that far.
        if not 2000 <= moment.year <= 2999:
            self.fail("out_of_range")
        return moment


def get_or_invalid(queryset, field: str, message: str, **lookup):
    """The object, or a 400 naming the input field that points nowhere."""
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise AppError("invalid", message, fields={field: message})
    return obj
