"""Helpers every marketplace service shares."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from exchange.errors import AppError
from marketplace.models import ComputeAsset

FACTOR_PLACES = Decimal("0.0001")
PRICE_PLACES = Decimal("0.01")
UNPROCESSABLE = 422


def checked_decimal(value, *, field: str, places: Decimal, low: Decimal, high: Decimal, low_inclusive: bool = True) -> Decimal:
    """An exact decimal within bounds with at most ``places`` decimals, or AppError on ``field``."""
    if isinstance(value, float):
        raise AppError("invalid", f"Send {field} as a string such as \"1.25\", not a floating point number.",
                       fields={field: "Send decimals as strings."})
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise AppError("invalid", f"{field} is not a number.", fields={field: "Not a number."}) from None
    if not number.is_finite():
        raise AppError("invalid", f"{field} is not a number.", fields={field: "Not a number."})
    # Bounds before quantize: quantizing 1E+999999 would itself fail.
    if number > high or number < low or (not low_inclusive and number == low):
        bound = "≥" if low_inclusive else ">"
        raise AppError("invalid", f"{field} must be {bound} {low} and ≤ {high}.", fields={field: f"Between {low} and {high}."})
    if number != number.quantize(places, rounding=ROUND_FLOOR):
        raise AppError("invalid", f"{field} allows at most {abs(places.as_tuple().exponent)} decimal places.",
                       fields={field: "Too many decimal places."})
    return number.quantize(places)


def lock_asset(asset: ComputeAsset) -> ComputeAsset:
    """Row lock that serialises inventory, owner and listing changes of one asset."""
    return ComputeAsset.objects.select_for_update().get(pk=asset.pk)
