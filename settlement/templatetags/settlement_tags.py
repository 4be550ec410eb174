from decimal import Decimal

from django import template

from accounts.models import Organisation
from accounts.selectors import membership_current
from exchange.money import cny as cny_text

register = template.Library()


@register.simple_tag(takes_context=True)
def organisation_kind(context) -> str:
    """The kind of organisation the signed-in person acts for ("" if none), for the navigation.

    One query per request, shared with ``marketplace_tags.is_provider``, which reads the
    answer it keeps on the request."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return ""
    if not hasattr(request, "_organisation_kind"):
        membership = membership_current(user=request.user)
        request._organisation_kind = membership.organisation.kind if membership is not None else ""
        request._is_provider = request._organisation_kind == Organisation.Kind.PROVIDER
    return request._organisation_kind


@register.filter
def cny(fen) -> str:
    """Integer fen → "1234.56" (CNY)."""
    return "" if fen is None else cny_text(int(fen))


@register.filter
def percent_bp(bp) -> str:
    """9990 basis points → "99.90 %"."""
    return f"{Decimal(bp) / 100:.2f} %"


@register.filter
def hours(value) -> str:
    """Device-hours without trailing zeros: Decimal("99.5000") → "99.5", Decimal("100.0000") → "100"."""
    if value is None or value == "":
        return ""
    return format(Decimal(value).normalize(), "f")
