from decimal import Decimal

from django import template

from accounts.models import Organisation
from accounts.selectors import membership_current

register = template.Library()


@register.simple_tag(takes_context=True)
def is_provider(context) -> bool:
    """Whether the signed-in person acts for a provider (one query, remembered for the request)."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return False
    if not hasattr(request, "_is_provider"):
        membership = membership_current(user=request.user)
        request._is_provider = membership is not None and membership.organisation.kind == Organisation.Kind.PROVIDER
    return request._is_provider


@register.filter
def period_minutes(compute_class) -> int | None:
    """The delivery period in minutes when it is shorter than an hour (the demo class in demo mode)."""
    from marketplace.periods import class_period

    minutes = int(class_period(compute_class).total_seconds()) // 60
    return minutes if minutes < 60 else None


@register.filter
def percent_bp(share_bp: int) -> str:
    """6000 basis points → "60.00 %"."""
    return f"{Decimal(share_bp) / 100:.2f} %"


@register.filter
def latency_class(ms) -> str:
    return {1: "lat-city", 5: "lat-region"}.get(ms, "lat-national")


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key)
