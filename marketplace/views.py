"""Pages: the market, the catalogue, an asset's page, and a provider's dashboard."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import actor_from_user
from accounts.views import _apply_error
from exchange.errors import AppError
from exchange.selectors import order_list
from marketplace.access import asset_for, check_listing_owner, check_provider
from marketplace.forms import AssetForm, BrowseForm, InventoryForm, ListingForm, OwnersForm
from marketplace.models import ComputeAsset, Listing
from marketplace.periods import china_midnight
from marketplace.selectors import (
    ListingFilters,
    asset_detail_queryset,
    asset_list,
    asset_provenance_events,
    attestation_check,
    attestations_for,
    compute_class_list,
    device_type_factors,
    device_type_list,
    hub_latencies,
    hub_list,
    listing_search,
    owner_sets,
    provenance_check,
    provenance_verify,
)
from settlement.selectors import provider_sales
from marketplace.services import (
    asset_owners_set,
    asset_register,
    inventory_set,
    listing_create,
    listing_withdraw,
)

PAGE_SIZE = 20
ASKS_SHOWN = 20
TIMELINE_SIZE = 50
SORT_ORDER = {
    "newest": ("-id",), "price": ("reserve_price", "id"), "-price": ("-reserve_price", "-id"),
    "start": ("window_start", "id"), "pue": ("pue", "id"), "-green": ("-green_share", "-id"),
    "latency": ("latency_ms", "reserve_price", "id"),
}


def _actor_or_none(request):
    if not request.user.is_authenticated:
        return None
    try:
        return actor_from_user(request.user)
    except AppError:
        return None


def _error_status(exc: AppError) -> int:
    return exc.status_code if 400 <= exc.status_code < 500 else 400


def market(request):
    actor = _actor_or_none(request)
    data = request.GET.copy()
    if "city" not in data and actor is not None:
        data["city"] = actor.organisation.city
    hubs = list(hub_list())
    form = BrowseForm(data, classes=list(compute_class_list()), hubs=hubs)
    form.is_valid()
    params = {k: v for k, v in form.cleaned_data.items() if k not in form.errors}
    city = params.get("city") or ""
    latencies = hub_latencies(city=city, hubs=hubs) if city else {}
    latency_max = params.get("latency_max") if latencies else None
    filters = ListingFilters(
        compute_class=params.get("compute_class") or None, hub=params.get("hub") or None,
        window_from=china_midnight(params["date_from"]) if params.get("date_from") else None,
        window_to=china_midnight(params["date_to"] + timedelta(days=1)) if params.get("date_to") else None,
        pue_max=params.get("pue_max"), green_min=params.get("green_min"), price_max=params.get("price_max"),
        hub_ids=tuple(h for h, ms in latencies.items() if ms <= latency_max) if latency_max else None,
    )
    sort = params.get("sort") or "newest"
    if sort == "latency" and not latencies:
        sort = "newest"
    listings = listing_search(filters=filters, latencies=latencies).order_by(*SORT_ORDER[sort])
    page = Paginator(listings, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "marketplace/market.html", {
        "form": form, "page": page, "query": query.urlencode(), "city": city, "hubs": hubs, "latencies": latencies,
        "filtered": any(v not in (None, "") for k, v in request.GET.items() if k not in ("page", "sort")),
    }, status=400 if form.errors else 200)


def catalogue(request):
    actor = _actor_or_none(request)
    city = request.GET.get("city", actor.organisation.city if actor else "")[:60]
    hubs = list(hub_list())
    latencies = hub_latencies(city=city, hubs=hubs) if city else {}
    classes = list(compute_class_list())
    device_types = list(device_type_list())
    attestations = list(attestations_for(device_type_ids=[d.id for d in device_types]))
    rows = [(d, device_type_factors(device_type=d, classes=classes, attestations=attestations),
             [(a, attestation_check(a)) for a in attestations if a.device_type_id == d.id]) for d in device_types]
    return render(request, "marketplace/catalogue.html", {
        "hubs": [(hub, latencies.get(hub.id)) for hub in hubs], "city": city, "classes": classes, "device_rows": rows,
        "verification": _verification(request, attestations),
    })


def _verification(request, attestations):
    """The attestation named by ``?verify=`` checked now, for the page's verify buttons."""
    chosen = next((a for a in attestations if str(a.id) == request.GET.get("verify")), None)
    return (chosen, attestation_check(chosen)) if chosen is not None else None


def asset_page(request, asset_id: int):
    asset = get_object_or_404(asset_detail_queryset(), pk=asset_id)
    actor = _actor_or_none(request)
    is_owner = actor is not None and actor.organisation.id == asset.provider_id
    inventory = [item for item in asset.inventory.all() if item.count or is_owner]
    device_ids = {item.device_type_id for item in asset.inventory.all()} | set(
        asset.listings.values_list("device_type_id", flat=True))
    attestations = list(attestations_for(device_type_ids=device_ids))
    classes = list(compute_class_list())
    verification = _verification(request, attestations)
    chain = provenance_verify() if request.GET.get("verify_chain") else None
    timeline = provenance_check(asset_provenance_events(asset=asset).order_by("-seq")[:TIMELINE_SIZE])
    listings = listing_search(filters=ListingFilters(provider=asset.provider, include_withdrawn=is_owner)).filter(asset=asset)
    now = timezone.now()
    sets, current_seen = [], False
    for at, rows in owner_sets(asset=asset):
        state = "scheduled" if at > now else ("past" if current_seen else "current")
        current_seen = current_seen or state == "current"
        sets.append((at, rows, state))
    context = {
        "asset": asset, "is_owner": is_owner, "owner_sets": sets,
        "inventory": [(item, device_type_factors(device_type=item.device_type, classes=classes, attestations=attestations))
                      for item in inventory],
        "attestations": [(a, attestation_check(a)) for a in attestations], "verification": verification,
        "chain": chain, "timeline": timeline, "timeline_size": TIMELINE_SIZE,
        "listings": listings if is_owner or asset.provider.is_verified else [],
    }
    if is_owner:
        context["inventory_form"] = InventoryForm()
        current = next((rows for _, rows, state in sets if state == "current"), [])
        context["owners_form"] = OwnersForm(initial={
            key: value for i, row in enumerate(current, start=1) if i <= 4
            for key, value in ((f"owner_{i}", row.organisation_id), (f"share_{i}", row.share_bp))
        })
    return render(request, "marketplace/asset.html", context)


def _provider_actor(request):
    actor = actor_from_user(request.user)
    check_provider(actor)
    return actor


def _dashboard(request, actor, *, asset_form=None, listing_form=None, status=200):
    own = asset_list(provider=actor.organisation)
    listings = listing_search(filters=ListingFilters(provider=actor.organisation, include_withdrawn=True)).order_by(
        "status", "-window_start", "-id")
    page = Paginator(listings, PAGE_SIZE).get_page(request.GET.get("page"))
    org_id = actor.organisation.id
    return render(request, "marketplace/dashboard.html", {
        "actor": actor, "assets": own, "page": page,
        "asset_form": asset_form or AssetForm(),
        "listing_form": listing_form or ListingForm(assets=own),
        # The desk's trading side: asks standing in the book, and what sales have settled to.
        "asks": order_list(organisation_id=org_id, status="live").filter(side="sell").order_by("-id")[:ASKS_SHOWN],
        "sales": provider_sales(organisation_id=org_id),
    }, status=status)


def _refused(request, exc: AppError):
    return render(request, "marketplace/refused.html", {"error": exc}, status=_error_status(exc))


@login_required
def dashboard(request):
    try:
        actor = _provider_actor(request)
    except AppError as exc:
        return _refused(request, exc)
    return _dashboard(request, actor)


@login_required
@require_POST
def asset_create(request):
    try:
        actor = _provider_actor(request)
    except AppError as exc:
        return _refused(request, exc)
    form = AssetForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        inventory = [(data["device_type"], data["count"])] if data.get("device_type") else []
        try:
            asset = asset_register(provider=actor.organisation, name=data["name"], cluster=data["cluster"],
                                   address=data["address"], pue=data["pue"], green_share=data["green_share"],
                                   inventory=inventory)
        except AppError as exc:
            _apply_error(form, exc)
        else:
            messages.success(request, _("Asset “%(name)s” registered.") % {"name": asset.name})
            return redirect("marketplace:asset", asset_id=asset.id)
    return _dashboard(request, actor, asset_form=form, status=400)


@login_required
@require_POST
def listing_new(request):
    try:
        actor = _provider_actor(request)
    except AppError as exc:
        return _refused(request, exc)
    form = ListingForm(request.POST, assets=asset_list(provider=actor.organisation))
    if form.is_valid():
        data = form.cleaned_data
        start = china_midnight(data["start"])
        try:
            listing = listing_create(asset=data["asset"], device_type=data["device_type"],
                                     compute_class=data["compute_class"], device_count=data["device_count"],
                                     window_start=start, window_end=china_midnight(data["start"] + timedelta(days=data["days"])),
                                     reserve_price=data["reserve_price"])
        except AppError as exc:
            _apply_error(form, exc)
        else:
            messages.success(request, _("Listed %(scu_h)s SCU·h of %(class)s.") % {
                "scu_h": sum(listing.periods.values_list("scu_h", flat=True)), "class": listing.compute_class.code})
            return redirect("marketplace:dashboard")
    return _dashboard(request, actor, listing_form=form, status=400)


@login_required
@require_POST
def listing_withdraw_view(request, listing_id: int):
    listing = get_object_or_404(Listing.objects.select_related("asset__provider"), pk=listing_id)
    try:
        actor = _provider_actor(request)
        check_listing_owner(actor, listing)
        listing_withdraw(listing=listing)
    except AppError as exc:
        if exc.status_code == 404:
            raise Http404 from exc
        if exc.status_code in (401, 403):
            # Refused as every other provider form refuses (not a redirect that looks like success).
            return _refused(request, exc)
        messages.error(request, exc.detail)
    else:
        messages.success(request, _("Listing %(id)s withdrawn.") % {"id": listing.id})
    return redirect("marketplace:dashboard")


def _own_asset(request, asset_id: int) -> ComputeAsset:
    actor = _provider_actor(request)
    try:
        return asset_for(actor, asset_id, manage=True)
    except AppError as exc:
        raise Http404 from exc


@login_required
@require_POST
def inventory_update(request, asset_id: int):
    try:
        asset = _own_asset(request, asset_id)
    except AppError as exc:
        return _refused(request, exc)
    form = InventoryForm(request.POST)
    if form.is_valid():
        try:
            inventory_set(asset=asset, **form.cleaned_data)
        except AppError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, _("Inventory updated."))
    else:
        messages.error(request, _("Choose a device type and a count of 0 or more."))
    return redirect("marketplace:asset", asset_id=asset.id)


@login_required
@require_POST
def owners_update(request, asset_id: int):
    try:
        asset = _own_asset(request, asset_id)
    except AppError as exc:
        return _refused(request, exc)
    form = OwnersForm(request.POST)
    if form.is_valid():
        try:
            with transaction.atomic():
                asset_owners_set(asset=asset, owners=form.owners(), effective_from=form.cleaned_data["effective_from"])
        except AppError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, _("Owner shares recorded."))
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return redirect("marketplace:asset", asset_id=asset.id)

