"""Order statuses as people read them, in the page's language (the model's labels are the
API's and the admin's, in English)."""

from django import template
from django.utils.translation import gettext_lazy as _

from exchange.models import Order

register = template.Library()

Status = Order.Status
ORDER_STATUS_LABELS = {
    Status.ACCEPTED: _("accepted"),
    Status.OPEN: _("open"),
    Status.PARTIALLY_FILLED: _("partially filled"),
    Status.FILLED: _("filled"),
    Status.CANCELLED: _("cancelled"),
    Status.EXPIRED: _("expired"),
    Status.REJECTED: _("rejected"),
}


@register.filter
def order_status(status: str) -> str:
    return ORDER_STATUS_LABELS.get(status, status)
