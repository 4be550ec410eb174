from django import template

from exchange.money import cny as _cny

register = template.Library()


@register.filter
def cny(fen):
    """Integer fen → "12.34"; an em dash for no value."""
    return "—" if fen is None else _cny(fen)
