"""Capacity listings: the market browses them; a provider creates, changes and withdraws its own."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_actor
from exchange.errors import AppError, NotFound
from exchange.idempotency import idempotent
from marketplace.access import asset_for, check_listing_owner, check_provider
from marketplace.api.common import THROTTLES, ChinaDateTimeField, Pagination, PublicReadPermission, errors, get_or_invalid, paginated
from marketplace.models import ComputeClass, DeviceType, Listing
from marketplace.selectors import (
    LATENCY_CITY_MS,
    LATENCY_NATIONAL_MS,
    LATENCY_REGION_MS,
    ListingFilters,
    hub_latencies,
    hub_list,
    listing_get,
    listing_search,
    listing_visible,
)
from marketplace.services import listing_change, listing_create, listing_withdraw

TAG = ["Listings"]
PRICE = {"max_digits": 12, "decimal_places": 2}
ORDERINGS = {
    "newest": ("-id",),
    "price": ("reserve_price", "id"),
    "-price": ("-reserve_price", "-id"),
    "start": ("window_start", "id"),
    "pue": ("pue", "id"),
    "-green": ("-green_share", "-id"),
    "latency": ("latency_ms", "id"),
}


class ListingOut(serializers.Serializer):
    id = serializers.IntegerField()
    asset = serializers.SerializerMethodField()
    provider = serializers.SerializerMethodField()
    device_type = serializers.SerializerMethodField()
    compute_class = serializers.CharField(source="compute_class.code")
    hub = serializers.CharField(source="asset.hub.code")
    device_count = serializers.IntegerField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    period_hours = serializers.IntegerField(source="compute_class.period_hours")
    factor = serializers.DecimalField(max_digits=10, decimal_places=4, help_text="Attested SCU per device, fixed at listing.")
    attestation = serializers.IntegerField(source="attestation_id")
    reserve_price = serializers.DecimalField(**PRICE, help_text="CNY per SCU·h.")
    status = serializers.CharField()
    listed_scu_h = serializers.IntegerField(help_text="Sum over periods of N × period hours × factor, each rounded down.")
    sold_scu_h = serializers.IntegerField()
    available_scu_h = serializers.IntegerField(help_text="Listed minus sold.")
    latency_ms = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    withdrawn_at = serializers.DateTimeField(allow_null=True)

    def get_asset(self, listing) -> dict:
        asset = listing.asset
        return {"id": asset.id, "name": asset.name, "cluster": asset.cluster.code, "pue": str(asset.pue),
                "green_share": str(asset.green_share)}

    def get_provider(self, listing) -> dict:
        return {"id": listing.asset.provider_id, "name": listing.asset.provider.name}

    def get_device_type(self, listing) -> dict:
        return {"id": listing.device_type_id, "vendor": listing.device_type.vendor, "model": listing.device_type.model}

    def get_latency_ms(self, listing) -> int | None:
        return getattr(listing, "latency_ms", None)


class PeriodOut(serializers.Serializer):
    period_start = serializers.DateTimeField()
    scu_h = serializers.IntegerField()
    sold_scu_h = serializers.IntegerField()


class ListingDetailOut(ListingOut):
    periods = PeriodOut(many=True, source="periods.all")


LISTING_EXAMPLE = {
    "id": 12, "asset": {"id": 1, "name": "Zhongwei Hall A", "cluster": "NX-ZW", "pue": "1.15", "green_share": "86.00"},
    "provider": {"id": 6, "name": "West Hub Computing (Ningxia)"},
    "device_type": {"id": 1, "vendor": "Aurora Silicon", "model": "A80"}, "compute_class": "AI80", "hub": "NX",
    "device_count": 128, "window_start": "2026-11-25T16:00:00Z", "window_end": "2026-11-28T16:00:00Z",
    "period_hours": 24, "factor": "0.8000", "attestation": 1, "reserve_price": "9.80", "status": "active",
    "listed_scu_h": 7371, "sold_scu_h": 0, "available_scu_h": 7371, "latency_ms": 20, "created_at": "2026-11-25T08:00:00Z", "withdrawn_at": None,
}


def _listing(pk: int) -> Listing:
    listing = listing_get(pk=pk)
    if listing is None:
        raise NotFound("No listing with that id.")
    return listing


class ListingListApi(APIView):
    permission_classes = [PublicReadPermission]
    pagination_class = Pagination
    throttle_classes = THROTTLES
    write_scope = "provide"

    class FilterSerializer(serializers.Serializer):
        compute_class = serializers.CharField(required=False, max_length=12, help_text="Class code, e.g. AI80.")
        hub = serializers.CharField(required=False, max_length=8, help_text="Hub code, e.g. NX.")
        window_from = ChinaDateTimeField(required=False, help_text="Listings still delivering after this (a date is 00:00 China time).")
        window_to = ChinaDateTimeField(required=False, help_text="Listings delivering before this.")
        price_min = serializers.DecimalField(**PRICE, required=False, min_value=0)
        price_max = serializers.DecimalField(**PRICE, required=False, min_value=0)
        pue_max = serializers.DecimalField(max_digits=4, decimal_places=2, required=False, min_value=1)
        green_min = serializers.DecimalField(max_digits=5, decimal_places=2, required=False, min_value=0, max_value=100)
        city = serializers.CharField(required=False, allow_blank=True, max_length=60,
                                     help_text="Latency circles from this city (default: your head-office city).")
        latency_max = serializers.ChoiceField(required=False, choices=[LATENCY_CITY_MS, LATENCY_REGION_MS, LATENCY_NATIONAL_MS])
        mine = serializers.BooleanField(required=False, default=False, help_text="Only your own listings, withdrawn ones too.")
        ordering = serializers.ChoiceField(required=False, default="newest", choices=list(ORDERINGS))

        def validate(self, attrs):
            if attrs.get("window_from") and attrs.get("window_to") and attrs["window_to"] <= attrs["window_from"]:
                raise serializers.ValidationError({"window_to": "After window_from."})
            if attrs.get("price_min") is not None and attrs.get("price_max") is not None and attrs["price_max"] < attrs["price_min"]:
                raise serializers.ValidationError({"price_max": "At least price_min."})
            return attrs

    @extend_schema_serializer(component_name="ListingCreate")
    class InputSerializer(serializers.Serializer):
        asset = serializers.IntegerField(min_value=1)
        device_type = serializers.IntegerField(min_value=1)
        compute_class = serializers.CharField(max_length=12)
        device_count = serializers.IntegerField(min_value=1, max_value=10_000_000)
        window_start = ChinaDateTimeField(help_text="A period boundary; a date means 00:00 China time.")
        window_end = ChinaDateTimeField(help_text="A period boundary, exclusive; a date means 00:00 China time.")
        reserve_price = serializers.DecimalField(**PRICE, min_value=Decimal("0.01"), help_text="CNY per SCU·h, tick 0.01.")

    @extend_schema(
        tags=TAG, summary="Browse listed capacity", parameters=[FilterSerializer],
        responses={200: ListingOut(many=True), **errors(400, 401, 403, 429, example=(
            "invalid", "The request is not valid. price_max: A valid number is required.",
            {"price_max": "A valid number is required."}))},
        examples=[OpenApiExample("AI80 in Ningxia", value=LISTING_EXAMPLE, response_only=True)],
    )
    def get(self, request):
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        actor = request_actor(request) if request.user.is_authenticated else None
        city = p.get("city", actor.organisation.city if actor else "")
        latencies = hub_latencies(city=city, hubs=list(hub_list())) if city else {}
        if p["ordering"] == "latency" and not latencies:
            raise AppError("invalid", "Ordering by latency needs a city.", fields={"city": "Required for latency."})
        if p.get("latency_max") is not None and not latencies:
            raise AppError("invalid", "latency_max needs a city.", fields={"city": "Required for latency_max."})
        if p["mine"] and actor is None:
            raise AppError("not_authenticated", "Sign in (or send a token) to see your own listings.", status_code=401)
        filters = ListingFilters(
            compute_class=(p.get("compute_class") or "").upper() or None, hub=(p.get("hub") or "").upper() or None,
            window_from=p.get("window_from"), window_to=p.get("window_to"), price_min=p.get("price_min"),
            price_max=p.get("price_max"), pue_max=p.get("pue_max"), green_min=p.get("green_min"),
            hub_ids=tuple(h for h, ms in latencies.items() if ms <= p["latency_max"]) if p.get("latency_max") else None,
            provider=actor.organisation if p["mine"] else None, include_withdrawn=p["mine"],
        )
        self.ordering = ORDERINGS[p["ordering"]]
        return paginated(self, request, listing_search(filters=filters, latencies=latencies), ListingOut)

    @extend_schema(
        tags=TAG, summary="List capacity of your asset",
        description=("N devices of one attested device type in one compute class over whole delivery periods. "
                     "Each period gets ⌊N × period hours × factor⌋ SCU·h, which backs asks in that period's "
                     "instrument. Refused beyond the asset's inventory at any instant (overlapping listings count)."),
        request=InputSerializer,
        responses={201: ListingDetailOut, **errors(400, 401, 403, 404, 409, 422, 429, example=(
            "window_misaligned", "AI80 is traded in periods of 24 h; a window starts and ends at 00:00 China time.",
            {"window_start": "Must be 00:00 China time."}))},
        examples=[OpenApiExample("Three days of AI80", request_only=True, value={
            "asset": 1, "device_type": 1, "compute_class": "AI80", "device_count": 128,
            "window_start": "2026-11-26", "window_end": "2026-11-29", "reserve_price": "9.80"})],
    )
    @idempotent()
    def post(self, request):
        actor = request_actor(request)
        check_provider(actor)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        asset = asset_for(actor, values.pop("asset"), manage=True)
        device_type = get_or_invalid(DeviceType.objects.all(), "device_type", "Unknown device type.", pk=values.pop("device_type"))
        compute_class = get_or_invalid(ComputeClass.objects.all(), "compute_class", "Unknown compute class.",
                                       code=values.pop("compute_class").upper())
        listing = listing_create(asset=asset, device_type=device_type, compute_class=compute_class, **values)
        return Response(ListingDetailOut(_listing(listing.id)).data, status=status.HTTP_201_CREATED)


class ListingDetailApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES
    write_scope = "provide"

    @extend_schema_serializer(component_name="ListingUpdate")
    class InputSerializer(serializers.Serializer):
        device_count = serializers.IntegerField(required=False, min_value=1, max_value=10_000_000,
                                                help_text="Applies to periods that have not started.")
        reserve_price = serializers.DecimalField(**PRICE, required=False, min_value=Decimal("0.01"))

    @extend_schema(tags=TAG, summary="One listing with its delivery periods",
                   responses={200: ListingDetailOut, **errors(404, 429)},
                   examples=[OpenApiExample("AI80 in Ningxia", response_only=True, value={
                       **LISTING_EXAMPLE, "periods": [{"period_start": "2026-11-25T16:00:00Z", "scu_h": 2457, "sold_scu_h": 0}]})])
    def get(self, request, pk: int):
        listing = _listing(pk)
        actor = request_actor(request) if request.user.is_authenticated else None
        if not listing_visible(listing=listing, organisation=actor.organisation if actor else None,
                               is_regulator=bool(actor and actor.is_regulator)):
            raise NotFound("No listing with that id.")
        return Response(ListingDetailOut(listing).data)

    @extend_schema(
        tags=TAG, summary="Change device count or reserve price of your listing (never below what is sold)",
        request=InputSerializer, responses={200: ListingDetailOut, **errors(400, 401, 403, 404, 422, 429)},
        examples=[OpenApiExample("Shrink", value={"device_count": 64}, request_only=True)],
    )
    def patch(self, request, pk: int):
        actor = request_actor(request)
        check_provider(actor)
        listing = _listing(pk)
        check_listing_owner(actor, listing)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        listing_change(listing=listing, **data.validated_data)
        return Response(ListingDetailOut(_listing(pk)).data)


class ListingWithdrawApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES
    write_scope = "provide"

    @extend_schema(
        tags=TAG, summary="Withdraw your listing's periods that have not started (refused if any is sold)",
        request=None, responses={200: ListingDetailOut, **errors(401, 403, 404, 409, 422, 429)},
        examples=[OpenApiExample("Withdrawn", response_only=True, value={
            **LISTING_EXAMPLE, "status": "withdrawn", "listed_scu_h": 0, "withdrawn_at": "2026-11-25T09:00:00Z", "periods": []})],
    )
    @idempotent()
    def post(self, request, pk: int):
        actor = request_actor(request)
        check_provider(actor)
        listing = _listing(pk)
        check_listing_owner(actor, listing)
        listing_withdraw(listing=listing)
        return Response(ListingDetailOut(_listing(pk)).data)
