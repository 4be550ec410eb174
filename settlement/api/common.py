"""What the settlement views share: input reading, the device-hours field, pages."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.pagination import CursorPagination

TAG = ["Settlement"]
DEVICE_HOURS = {"max_digits": 18, "decimal_places": 4}
SELLER_MONEY = {"type": "string", "format": "decimal", "pattern": r"^-?\d+\.\d{2}$", "nullable": True,
                "description": "CNY; null unless your organisation sold the capacity."}


def input_of(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def related_or_none(obj, name: str):
    """A reverse one-to-one joined by select_related, or None where there is no row."""
    try:
        return getattr(obj, name)
    except AttributeError:  # RelatedObjectDoesNotExist is one
        return None


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^\d{1,9}(\.\d{1,4})?$", "example": "12.5"})
class DeviceHours(serializers.Field):
    """Passed on as sent: ``services.device_hours_parse`` reads it (a decimal string or an
    integer, never a float) and names the field in its refusal."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return str(value)


class IdPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


def context_of(actor) -> dict:
    return {"organisation_id": actor.membership.organisation_id}
