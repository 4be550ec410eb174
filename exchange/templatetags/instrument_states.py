"""Instrument states as people read them, in the page's language (the model's labels are the
API's and the admin's, in English)."""

from django import template
from django.utils.translation import gettext_lazy as _

from exchange.models import Instrument

register = template.Library()

State = Instrument.State
STATE_LABELS = {
    State.PRE_OPEN: _("Pre-open (opening auction)"),
    State.CONTINUOUS: _("Continuous trading"),
    State.AUCTION: _("Call auction"),
    State.HALTED: _("Halted"),
    State.CLOSED: _("Closed"),
}


@register.filter
def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)


@register.simple_tag
def state_labels() -> dict:
    """Every label, for pages whose script shows the state market data sends (json_script)."""
    return {state: str(label) for state, label in STATE_LABELS.items()}
