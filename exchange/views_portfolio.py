"""The portfolio: one organisation's money, orders, fills, capacity and settlements on one
page, kept current from its private stream (static/js/portfolio.js reloads the sections an
event changes)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from accounts.access import actor_from_user, check_actor
from exchange import ledger
from exchange.errors import AppError
from exchange.models import Order
from exchange.selectors import fill_list, order_list
from settlement.selectors import allocation_list, settlement_list

PAGE_SIZE = 20


def _page(request, queryset, name: str):
    """Page ``?<name>=N`` of ``queryset`` (each list of the portfolio pages on its own), with
    the links to the pages beside it."""
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get(name))

    def link(number: int) -> str:
        query = request.GET.copy()
        query[name] = number
        return f"?{query.urlencode()}#{name}"

    page.previous_url = link(page.previous_page_number()) if page.has_previous() else None
    page.next_url = link(page.next_page_number()) if page.has_next() else None
    return page


@login_required
def portfolio(request):
    try:
        actor = actor_from_user(request.user)
        check_actor(actor, scope="read", acting=False)
    except AppError as exc:
        return render(request, "marketplace/refused.html", {"error": exc}, status=exc.status_code)
    org_id = actor.membership.organisation_id
    orders = order_list(organisation_id=org_id).order_by("-id")
    held = allocation_list(actor=actor).filter(holder_id=org_id).select_related("trade__instrument")
    return render(request, "exchange/portfolio.html", {
        "actor": actor,
        "balances": ledger.balances(organisation=actor.organisation),
        "open_orders": _page(request, orders.filter(status__in=Order.LIVE), "open"),
        "past_orders": _page(request, orders.exclude(status__in=Order.LIVE), "past"),
        "fills": _page(request, fill_list(organisation_id=org_id).order_by("-id"), "fills"),
        "allocations": _page(request, held, "allocations"),
        "settlements": _page(request, settlement_list(actor=actor).order_by("-settled_at", "-pk"), "settlements"),
        "query": request.GET,
    })
