"""The console's market statistics: one chart per statistic (uPlot, static/vendor/uplot), the
figures as a table beneath it, and a CSV of each from the API."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from exchange.errors import AppError
from marketplace.models import ComputeClass, Hub
from marketplace.periods import china_today
from supervision.statistics import INTERVALS, STATISTICS, filter_from_params, statistic_build
from supervision.views import console_actor, refused


def _chart_text() -> dict[str, str]:
    """What the charts write on themselves, in the page's language."""
    return {
        "volume": _("Volume (SCU·h)"), "value": _("Value (CNY)"), "index": _("Price index (CNY per SCU·h)"),
        "utilisation": _("Utilisation (%)"), "green": _("Green-power share (%)"), "sold": _("Sold"),
        "delivered": _("Delivered"), "delivery_rate": _("Delivery rate (%)"), "dispute_rate": _("Dispute rate (%)"),
        "rate": _("Per cent"), "provider": _("Provider"), "time": _("Time (China)"),
    }


@login_required
@require_GET
def statistics_page(request):
    try:
        console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    today = china_today(timezone.now())
    context = {
        "classes": ComputeClass.objects.order_by("code").values_list("code", flat=True),
        "hubs": Hub.objects.order_by("sort_order", "code").values_list("code", flat=True),
        "intervals": INTERVALS, "chart_text": _chart_text(),
        "values": {key: request.GET.get(key, "")[:20] for key in ("from", "to", "compute_class", "hub", "interval")},
    }
    try:
        f = filter_from_params(request.GET, today=today)
    except AppError as exc:
        return render(request, "supervision/statistics.html", {**context, "error": exc}, status=400)
    figures = {name.replace("-", "_"): statistic_build(name=name, f=f) for name in STATISTICS}
    query = urlencode(f.query())
    context.update(
        # The chosen interval, not the one an empty choice led to: a shorter range may change it.
        values={**f.as_dict(), "interval": context["values"]["interval"]}, figures=figures,
        csv={name.replace("-", "_"): f"{reverse(f'api:statistics-{name}-csv')}?{query}" for name in STATISTICS},
    )
    return render(request, "supervision/statistics.html", context)
