"""Compute assets, their owners and inventory: a provider sees and changes only its own."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ScopedPermission, request_actor
from accounts.models import Organisation
from exchange.errors import AppError
from exchange.idempotency import idempotent
from marketplace.access import asset_for, check_provider
from marketplace.api.common import THROTTLES, Pagination, errors, get_or_invalid, paginated
from marketplace.models import Cluster, DeviceType
from marketplace.selectors import asset_detail_queryset, asset_list, owner_sets
from marketplace.services import asset_owners_set, asset_register, asset_update, inventory_set

TAG = ["Assets"]
DECIMAL_PCT = {"max_digits": 5, "decimal_places": 2}


class OrganisationRef(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class OwnerOut(serializers.Serializer):
    organisation = OrganisationRef()
    share_bp = serializers.IntegerField(help_text="Basis points; a share set sums to 10000.")


class ShareSetOut(serializers.Serializer):
    effective_from = serializers.DateTimeField()
    owners = OwnerOut(many=True)


class InventoryOut(serializers.Serializer):
    device_type = serializers.IntegerField(source="device_type_id")
    vendor = serializers.CharField(source="device_type.vendor")
    model = serializers.CharField(source="device_type.model")
    count = serializers.IntegerField()


class AssetOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    provider = OrganisationRef()
    hub = serializers.CharField(source="hub.code")
    cluster = serializers.CharField(source="cluster.code")
    address = serializers.CharField()
    description = serializers.CharField()
    pue = serializers.DecimalField(max_digits=4, decimal_places=2)
    green_share = serializers.DecimalField(**DECIMAL_PCT, help_text="Green-power share, per cent.")
    created_at = serializers.DateTimeField()


class AssetDetailOut(AssetOut):
    owners = serializers.SerializerMethodField(help_text="Share sets, newest first; the first in force now or later.")
    inventory = InventoryOut(many=True, source="inventory.all")

    def get_owners(self, asset) -> ShareSetOut(many=True):
        return ShareSetOut([{"effective_from": at, "owners": [{"organisation": r.organisation, "share_bp": r.share_bp}
                                                               for r in rows]}
                            for at, rows in owner_sets(asset=asset)], many=True).data


ASSET_EXAMPLE = {
    "id": 1, "name": "Zhongwei Hall A", "provider": {"id": 6, "name": "West Hub Computing (Ningxia)"}, "hub": "NX",
    "cluster": "NX-ZW", "address": "Zhongwei Industrial Park", "description": "Liquid-cooled training hall",
    "pue": "1.15", "green_share": "86.00", "created_at": "2026-11-25T08:00:00Z",
    "owners": [{"effective_from": "2026-11-25T08:00:00Z", "owners": [
        {"organisation": {"id": 6, "name": "West Hub Computing (Ningxia)"}, "share_bp": 6000},
        {"organisation": {"id": 7, "name": "Qingyang Green Compute"}, "share_bp": 4000}]}],
    "inventory": [{"device_type": 1, "vendor": "Aurora Silicon", "model": "A80", "count": 512}],
}


class OwnerIn(serializers.Serializer):
    organisation = serializers.IntegerField(required=False, min_value=1, help_text="Organisation id …")
    organisation_name = serializers.CharField(required=False, max_length=200, help_text="… or its exact name.")
    share_bp = serializers.IntegerField(min_value=1, max_value=10000)

    def validate(self, attrs):
        if ("organisation" in attrs) == ("organisation_name" in attrs):
            raise serializers.ValidationError("Give organisation (an id) or organisation_name, not both.")
        return attrs


class InventoryIn(serializers.Serializer):
    device_type = serializers.IntegerField(min_value=1)
    count = serializers.IntegerField(min_value=1, max_value=10_000_000)


def _owners(rows: list[dict], field: str = "owners") -> list[tuple[Organisation, int]]:
    ids = {row["organisation"] for row in rows if "organisation" in row}
    names = {row["organisation_name"] for row in rows if "organisation_name" in row}
    by_id = Organisation.objects.in_bulk(ids)
    by_name = {o.name: o for o in Organisation.objects.filter(name__in=names)}
    out = []
    for index, row in enumerate(rows):
        organisation = by_id.get(row["organisation"]) if "organisation" in row else by_name.get(row["organisation_name"])
        if organisation is None:
            raise AppError("invalid", "An owner names no known organisation.",
                           fields={f"{field}.{index}.organisation": "Unknown organisation."})
        out.append((organisation, row["share_bp"]))
    return out


def _inventory(rows: list[dict]) -> list[tuple[DeviceType, int]]:
    types = DeviceType.objects.in_bulk({row["device_type"] for row in rows})
    out = []
    for index, row in enumerate(rows):
        if row["device_type"] not in types:
            raise AppError("invalid", "An inventory line names no known device type.",
                           fields={f"inventory.{index}.device_type": "Unknown device type."})
        out.append((types[row["device_type"]], row["count"]))
    return out


class AssetListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = Pagination
    throttle_classes = THROTTLES
    write_scope = "provide"
    ordering = ("-id",)

    class FilterSerializer(serializers.Serializer):
        hub = serializers.CharField(required=False, max_length=8)

    @extend_schema_serializer(component_name="AssetCreate")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        cluster = serializers.CharField(max_length=16, help_text="Cluster code, e.g. NX-ZW; sets the hub.")
        hub = serializers.CharField(required=False, max_length=8, help_text="Optional; must be the cluster's hub.")
        address = serializers.CharField(required=False, allow_blank=True, max_length=300)
        description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
        pue = serializers.DecimalField(max_digits=4, decimal_places=2, min_value=1, max_value=3)
        green_share = serializers.DecimalField(**DECIMAL_PCT, min_value=0, max_value=100, help_text="Per cent.")
        inventory = InventoryIn(many=True, required=False)
        owners = OwnerIn(many=True, required=False, help_text="Default: your organisation alone (10000 bp).")

    @extend_schema(tags=TAG, summary="Your organisation's assets (a regulator sees all)", parameters=[FilterSerializer],
                   responses={200: AssetOut(many=True), **errors(400, 401, 403, 429)})
    def get(self, request):
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        actor = request_actor(request)
        provider = None if actor.is_regulator else actor.organisation
        return paginated(self, request, asset_list(provider=provider, hub_code=params.validated_data.get("hub")), AssetOut)

    @extend_schema(
        tags=TAG, summary="Register an asset with its owners and inventory", request=InputSerializer,
        responses={201: AssetDetailOut, **errors(400, 401, 403, 409, 429, example=(
            "shares_invalid", "Owner shares add up to 9000 basis points; they must add up to exactly 10000 (100 %).",
            {"owners": "Total 9000, not 10000."}))},
        examples=[
            OpenApiExample("Co-owned hall", request_only=True, value={
                "name": "Zhongwei Hall A", "cluster": "NX-ZW", "address": "Zhongwei Industrial Park", "pue": "1.15",
                "green_share": "86.00", "inventory": [{"device_type": 1, "count": 512}],
                "owners": [{"organisation_name": "West Hub Computing (Ningxia)", "share_bp": 6000},
                           {"organisation": 7, "share_bp": 4000}]}),
            OpenApiExample("Registered", response_only=True, value=ASSET_EXAMPLE, status_codes=["201"]),
        ],
    )
    @idempotent()
    def post(self, request):
        actor = request_actor(request)
        check_provider(actor)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        cluster = get_or_invalid(Cluster.objects.select_related("hub"), "cluster", "Unknown cluster code.",
                                 code=values.pop("cluster").upper())
        hub = values.pop("hub", None)
        if hub is not None and hub.upper() != cluster.hub.code:
            raise AppError("invalid", f"Cluster {cluster.code} belongs to hub {cluster.hub.code}.",
                           fields={"hub": f"Must be {cluster.hub.code}."})
        owners = _owners(values.pop("owners")) if "owners" in values else None
        inventory = _inventory(values.pop("inventory", []))
        asset = asset_register(provider=actor.organisation, cluster=cluster, owners=owners, inventory=inventory, **values)
        return Response(AssetDetailOut(asset_detail_queryset().get(pk=asset.pk)).data, status=status.HTTP_201_CREATED)


class AssetDetailApi(APIView):
    permission_classes = [ScopedPermission]
    throttle_classes = THROTTLES
    write_scope = "provide"

    @extend_schema_serializer(component_name="AssetUpdate")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        address = serializers.CharField(allow_blank=True, max_length=300)
        description = serializers.CharField(allow_blank=True, max_length=5000)
        pue = serializers.DecimalField(max_digits=4, decimal_places=2, min_value=1, max_value=3)
        green_share = serializers.DecimalField(**DECIMAL_PCT, min_value=0, max_value=100)

    @extend_schema(tags=TAG, summary="One of your assets with owners and inventory",
                   responses={200: AssetDetailOut, **errors(401, 403, 404, 429)},
                   examples=[OpenApiExample("Co-owned hall", value=ASSET_EXAMPLE, response_only=True)])
    def get(self, request, pk: int):
        return Response(AssetDetailOut(asset_for(request_actor(request), pk, manage=False,
                                                 queryset=asset_detail_queryset())).data)

    @extend_schema(
        tags=TAG, summary="Edit name, address, description, PUE or green share (hub and cluster are fixed)",
        request=InputSerializer, responses={200: AssetDetailOut, **errors(400, 401, 403, 404, 409, 429)},
        examples=[OpenApiExample("New PUE", value={"pue": "1.12", "description": "After the cooling retrofit"},
                                 request_only=True)],
    )
    def patch(self, request, pk: int):
        actor = request_actor(request)
        check_provider(actor)
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        asset_update(asset=asset_for(actor, pk, manage=True), **data.validated_data)
        return Response(AssetDetailOut(asset_detail_queryset().get(pk=pk)).data)


class AssetOwnersApi(APIView):
    permission_classes = [ScopedPermission]
    throttle_classes = THROTTLES
    write_scope = "provide"

    @extend_schema_serializer(component_name="OwnersChange")
    class InputSerializer(serializers.Serializer):
        owners = OwnerIn(many=True, min_length=1)
        effective_from = serializers.DateTimeField(required=False, help_text="Now (default) or later; never the past.")

    @extend_schema(tags=TAG, summary="Owner share sets of your asset, newest first",
                   responses={200: ShareSetOut(many=True), **errors(401, 403, 404, 429)})
    def get(self, request, pk: int):
        asset = asset_for(request_actor(request), pk, manage=False, queryset=asset_detail_queryset())
        return Response(AssetDetailOut(asset).data["owners"])

    @extend_schema(
        tags=TAG, summary="Change the owners from a time on (a new share set; the past is kept)",
        request=InputSerializer, responses={201: ShareSetOut(many=True), **errors(400, 401, 403, 404, 409, 429, example=(
            "shares_invalid", "Owner shares add up to 10500 basis points; they must add up to exactly 10000 (100 %).",
            {"owners": "Total 10500, not 10000."}))},
        examples=[OpenApiExample("Three owners from 1 December", request_only=True, value={
            "effective_from": "2026-12-01T00:00:00+08:00",
            "owners": [{"organisation": 6, "share_bp": 5000}, {"organisation": 7, "share_bp": 3000},
                       {"organisation_name": "Gui'an Cloud Valley Data Centre", "share_bp": 2000}]})],
    )
    @idempotent()
    def post(self, request, pk: int):
        actor = request_actor(request)
        check_provider(actor)
        asset = asset_for(actor, pk, manage=True)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        asset_owners_set(asset=asset, owners=_owners(data.validated_data["owners"]),
                         effective_from=data.validated_data.get("effective_from"))
        asset = asset_detail_queryset().get(pk=pk)
        return Response(AssetDetailOut(asset).data["owners"], status=status.HTTP_201_CREATED)


class AssetInventoryApi(APIView):
    permission_classes = [ScopedPermission]
    throttle_classes = THROTTLES
    write_scope = "provide"

    @extend_schema_serializer(component_name="InventorySet")
    class InputSerializer(serializers.Serializer):
        device_type = serializers.IntegerField(min_value=1)
        count = serializers.IntegerField(min_value=0, max_value=10_000_000, help_text="The new total; 0 removes.")

    @extend_schema(tags=TAG, summary="Inventory of your asset", responses={200: InventoryOut(many=True), **errors(401, 403, 404, 429)})
    def get(self, request, pk: int):
        asset = asset_for(request_actor(request), pk, manage=False, queryset=asset_detail_queryset())
        return Response(InventoryOut(asset.inventory.all(), many=True).data)

    @extend_schema(
        tags=TAG, summary="Set the device count of one device type (never below what active listings use)",
        request=InputSerializer, responses={201: InventoryOut(many=True), **errors(400, 401, 403, 404, 422, 429)},
        examples=[OpenApiExample("512 accelerators", request_only=True, value={"device_type": 1, "count": 512})],
    )
    @idempotent()
    def post(self, request, pk: int):
        actor = request_actor(request)
        check_provider(actor)
        asset = asset_for(actor, pk, manage=True)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device_type = get_or_invalid(DeviceType.objects.all(), "device_type", "Unknown device type.",
                                     pk=data.validated_data["device_type"])
        inventory_set(asset=asset, device_type=device_type, count=data.validated_data["count"])
        asset = asset_detail_queryset().get(pk=pk)
        return Response(InventoryOut(asset.inventory.all(), many=True).data, status=status.HTTP_201_CREATED)
