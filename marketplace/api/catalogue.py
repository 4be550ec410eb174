"""Hubs, clusters and compute classes: read by anyone, edited by the regulator."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_actor
from exchange.errors import NotFound
from exchange.idempotency import idempotent
from marketplace.access import check_regulator
from marketplace.api.common import THROTTLES, Pagination, PublicReadPermission, errors, paginated
from marketplace.models import Cluster, ComputeClass, Precision
from marketplace.selectors import compute_class_list, hub_latencies, hub_list
from marketplace.services import cluster_update, compute_class_create, compute_class_update, hub_update

TAG = ["Catalogue"]


class ClusterOut(serializers.ModelSerializer):
    hub = serializers.CharField(source="hub.code")

    class Meta:
        model = Cluster
        fields = ["code", "hub", "name_en", "name_zh", "cities"]


class HubOut(serializers.Serializer):
    code = serializers.CharField()
    name_en = serializers.CharField()
    name_zh = serializers.CharField()
    region_cities = serializers.ListField(child=serializers.CharField())
    clusters = ClusterOut(many=True)
    latency_ms = serializers.SerializerMethodField(
        help_text="Latency circle from `city` (or the caller's head-office city): 1, 5 or 20 ms; null without a city."
    )

    def get_latency_ms(self, hub) -> int | None:
        return self.context.get("latencies", {}).get(hub.id)


class ClassOut(serializers.ModelSerializer):
    class Meta:
        model = ComputeClass
        fields = ["code", "name_en", "name_zh", "category", "reference_precision", "min_memory_gb",
                  "min_interconnect_gbps", "period_hours", "description_en", "description_zh"]


HUB_EXAMPLE = {
    "code": "NX", "name_en": "Ningxia", "name_zh": "宁夏", "region_cities": ["Yinchuan", "银川", "Zhongwei", "中卫"],
    "clusters": [{"code": "NX-ZW", "hub": "NX", "name_en": "Zhongwei", "name_zh": "中卫", "cities": ["Zhongwei", "中卫"]}],
    "latency_ms": 20,
}
CLASS_EXAMPLE = {
    "code": "AI80", "name_en": "AI training, 80 GB+", "name_zh": "AI 训练（80 GB 以上）", "category": "ai",
    "reference_precision": "fp16", "min_memory_gb": 80, "min_interconnect_gbps": 200, "period_hours": 24,
    "description_en": "Training-grade accelerators…", "description_zh": "训练级加速卡……",
}


def _city(request, given: str | None) -> str:
    if given is not None:
        return given
    if request.user and request.user.is_authenticated:
        return request_actor(request).organisation.city
    return ""


def _hub(code: str):
    hub = hub_list().filter(code=code.upper()).first()
    if hub is None:
        raise NotFound(f"No hub with code {code!r}.")
    return hub


class HubListApi(APIView):
    permission_classes = [PublicReadPermission]
    pagination_class = Pagination
    throttle_classes = THROTTLES
    ordering = ("sort_order", "id")

    class FilterSerializer(serializers.Serializer):
        city = serializers.CharField(required=False, allow_blank=True, max_length=60,
                                     help_text="A city, English or Chinese, for latency circles.")

    @extend_schema(
        tags=TAG, summary="The national hubs with their clusters and latency circles",
        parameters=[FilterSerializer], responses={200: HubOut(many=True), **errors(400, 429)},
        examples=[OpenApiExample("Ningxia from Shanghai", value=HUB_EXAMPLE, response_only=True)],
    )
    def get(self, request):
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        hubs = hub_list()
        city = _city(request, params.validated_data.get("city"))
        latencies = hub_latencies(city=city, hubs=list(hubs)) if city else {}
        return paginated(self, request, hubs, HubOut, {"latencies": latencies})


class HubDetailApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES
    write_scope = "read"

    @extend_schema_serializer(component_name="HubUpdate")
    class InputSerializer(serializers.Serializer):
        name_en = serializers.CharField(required=False, max_length=100)
        name_zh = serializers.CharField(required=False, max_length=100)
        region_cities = serializers.ListField(child=serializers.CharField(max_length=60), required=False, max_length=200)

    @extend_schema(tags=TAG, summary="One hub", responses={200: HubOut, **errors(404, 429)},
                   examples=[OpenApiExample("Ningxia", value=HUB_EXAMPLE, response_only=True)])
    def get(self, request, code: str):
        hub = _hub(code)
        city = _city(request, request.query_params.get("city"))
        return Response(HubOut(hub, context={"latencies": hub_latencies(city=city, hubs=[hub]) if city else {}}).data)

    @extend_schema(
        tags=TAG, summary="Edit a hub's names or region cities (regulator)", request=InputSerializer,
        responses={200: HubOut, **errors(400, 401, 403, 404, 429, example=("invalid", "Names cannot be empty.", {"name_en": "Required."}))},
        examples=[OpenApiExample("Add a city to the region", value={"region_cities": ["Yinchuan", "银川", "Zhongwei", "中卫", "Wuzhong"]}, request_only=True)],
    )
    def patch(self, request, code: str):
        check_regulator(request_actor(request))
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            hub = hub_update(hub=_hub(code), **data.validated_data)
        return Response(HubOut(_hub(hub.code), context={"latencies": {}}).data)


class ClusterDetailApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES
    write_scope = "read"

    @extend_schema_serializer(component_name="ClusterUpdate")
    class InputSerializer(serializers.Serializer):
        name_en = serializers.CharField(required=False, max_length=120)
        name_zh = serializers.CharField(required=False, max_length=120)
        cities = serializers.ListField(child=serializers.CharField(max_length=60), required=False, max_length=50)

    @staticmethod
    def _get(code: str) -> Cluster:
        cluster = Cluster.objects.select_related("hub").filter(code=code.upper()).first()
        if cluster is None:
            raise NotFound(f"No cluster with code {code!r}.")
        return cluster

    @extend_schema(tags=TAG, summary="One data-centre cluster", responses={200: ClusterOut, **errors(404, 429)},
                   examples=[OpenApiExample("Zhongwei", value=HUB_EXAMPLE["clusters"][0], response_only=True)])
    def get(self, request, code: str):
        return Response(ClusterOut(self._get(code)).data)

    @extend_schema(
        tags=TAG, summary="Edit a cluster's names or cities (regulator)", request=InputSerializer,
        responses={200: ClusterOut, **errors(400, 401, 403, 404, 429)},
        examples=[OpenApiExample("Cities", value={"cities": ["Zhongwei", "中卫"]}, request_only=True)],
    )
    def patch(self, request, code: str):
        check_regulator(request_actor(request))
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        cluster = cluster_update(cluster=self._get(code), **data.validated_data)
        return Response(ClusterOut(cluster).data)


class ClassFields(serializers.Serializer):
    name_en = serializers.CharField(max_length=100)
    name_zh = serializers.CharField(max_length=100)
    category = serializers.ChoiceField(choices=ComputeClass.Category.choices)
    reference_precision = serializers.ChoiceField(choices=Precision.choices)
    min_memory_gb = serializers.IntegerField(min_value=0, max_value=100_000)
    min_interconnect_gbps = serializers.IntegerField(min_value=0, max_value=100_000)
    period_hours = serializers.ChoiceField(choices=[1, 2, 3, 4, 6, 8, 12, 24], required=False)
    description_en = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    description_zh = serializers.CharField(required=False, allow_blank=True, max_length=2000)


def _class(code: str) -> ComputeClass:
    compute_class = compute_class_list().filter(code=code.upper()).first()
    if compute_class is None:
        raise NotFound(f"No compute class with code {code!r}.")
    return compute_class


class ClassListApi(APIView):
    permission_classes = [PublicReadPermission]
    pagination_class = Pagination
    throttle_classes = THROTTLES
    write_scope = "read"
    ordering = ("code",)

    @extend_schema_serializer(component_name="ClassCreate")
    class InputSerializer(ClassFields):
        code = serializers.RegexField(r"^[A-Za-z0-9]{2,12}$", help_text="2–12 letters and digits, e.g. AI80.")

    @extend_schema(tags=TAG, summary="The compute-class catalogue", responses={200: ClassOut(many=True), **errors(429)},
                   examples=[OpenApiExample("AI80", value=CLASS_EXAMPLE, response_only=True)])
    def get(self, request):
        return paginated(self, request, compute_class_list(), ClassOut)

    @extend_schema(
        tags=TAG, summary="Add a compute class (regulator)", request=InputSerializer,
        responses={201: ClassOut, **errors(400, 401, 403, 409, 429, example=("invalid", "The request is not valid. code: This value does not match the required pattern.", {"code": "This value does not match the required pattern."}))},
        examples=[OpenApiExample("AI inference, 48 GB", request_only=True, value={
            "code": "AI48", "name_en": "AI inference, 48 GB+", "name_zh": "AI 推理（48 GB 以上）", "category": "ai",
            "reference_precision": "fp16", "min_memory_gb": 48, "min_interconnect_gbps": 100})],
    )
    @idempotent()
    def post(self, request):
        check_regulator(request_actor(request))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        compute_class = compute_class_create(**data.validated_data)
        return Response(ClassOut(compute_class).data, status=status.HTTP_201_CREATED)


class ClassDetailApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES
    write_scope = "read"

    @extend_schema_serializer(component_name="ClassUpdate")
    class InputSerializer(ClassFields):
        pass

    @extend_schema(tags=TAG, summary="One compute class", responses={200: ClassOut, **errors(404, 429)},
                   examples=[OpenApiExample("AI80", value=CLASS_EXAMPLE, response_only=True)])
    def get(self, request, code: str):
        return Response(ClassOut(_class(code)).data)

    @extend_schema(
        tags=TAG, summary="Edit a compute class (regulator); new minimums apply to new listings",
        request=InputSerializer, responses={200: ClassOut, **errors(400, 401, 403, 404, 422, 429)},
        examples=[OpenApiExample("Raise the interconnect minimum", value={"min_interconnect_gbps": 400}, request_only=True)],
    )
    def patch(self, request, code: str):
        check_regulator(request_actor(request))
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            compute_class = compute_class_update(compute_class=_class(code), **data.validated_data)
        return Response(ClassOut(compute_class).data)
