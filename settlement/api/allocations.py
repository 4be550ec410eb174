"""Allocations: reading them, and the provider's and holder's actions on them."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ScopedPermission, request_actor
from exchange.errors import AppError
from exchange.idempotency import idempotent
from exchange.wire import JsonParser
from marketplace.api.common import ErrorOut, errors
from settlement import selectors, services
from settlement.access import check_holder, check_provider
from settlement.api.common import TAG, DeviceHours, IdPagination, context_of, input_of
from settlement.api.out import (
    AllocationStatusDetailOut, AllocationStatusOut, MeteringImportOut, MeteringOut,
)

CSV_MAX_BYTES = 1024 * 1024
TOO_LARGE = OpenApiResponse(ErrorOut, description="The CSV is over 1 MB (code `file_too_large`); split it.")


def allocation_out(actor, allocation_id: int) -> dict:
    allocation = selectors.allocation_detail(actor=actor, allocation_id=allocation_id)
    return AllocationStatusOut(allocation, context=context_of(actor)).data


class AllocationListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = IdPagination

    @extend_schema(tags=TAG, responses=AllocationStatusOut(many=True),
                   summary="Allocations your organisation holds, sold or delivers, newest first")
    def get(self, request):
        actor = request_actor(request)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.allocation_list(actor=actor), request, view=self)
        return paginator.get_paginated_response(AllocationStatusOut(page, many=True, context=context_of(actor)).data)


class AllocationDetailApi(APIView):
    permission_classes = [ScopedPermission]

    @extend_schema(tags=TAG, responses={200: AllocationStatusDetailOut, **errors(404)},
                   summary="One allocation; its access credentials for the holder's members only")
    def get(self, request, allocation_id: int):
        actor = request_actor(request)
        allocation = selectors.allocation_detail(actor=actor, allocation_id=allocation_id)
        data = AllocationStatusOut(allocation, context=context_of(actor)).data
        if "holder" in data["roles"]:
            data["credentials"] = selectors.delivery_credentials(actor=actor, allocation=allocation)
        return Response(data)


class DeliveryApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser]
    write_scope = "provide"

    class DeliveryIn(serializers.Serializer):
        endpoint = serializers.CharField(max_length=300, help_text="Where the holder connects, e.g. ssh://gpu.example:22")
        credentials = serializers.CharField(required=False, allow_blank=True, max_length=4000, trim_whitespace=False,
                                            help_text="Encrypted at rest; shown only to the holder's members.")

    @extend_schema(tags=TAG, request=DeliveryIn, responses={200: AllocationStatusOut, **errors(400, 401, 403, 404, 409, 429)},
                   summary="Provider: start delivery and give the holder its access details (again, to change them)",
                   examples=[OpenApiExample("ssh", request_only=True, value={
                       "endpoint": "ssh://gpu-17.nx.example:22", "credentials": "user alice, key in the vault"})])
    @idempotent()
    def post(self, request, allocation_id: int):
        actor = request_actor(request)
        check_provider(actor, selectors.allocation_get(actor=actor, allocation_id=allocation_id))
        services.delivery_start(actor=actor, allocation_id=allocation_id, **input_of(self.DeliveryIn, request))
        return Response(allocation_out(actor, allocation_id))


class DeliveryAnswerApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser]
    write_scope = "trade"

    class DeliveryAnswerIn(serializers.Serializer):
        working = serializers.BooleanField(help_text="true: access works; false: report it missing.")
        note = serializers.CharField(required=False, allow_blank=True, max_length=500)

    @extend_schema(tags=TAG, request=DeliveryAnswerIn,
                   responses={200: AllocationStatusOut, **errors(400, 401, 403, 404, 409, 429)},
                   summary="Holder: confirm access works, or report it missing")
    @idempotent()
    def post(self, request, allocation_id: int):
        actor = request_actor(request)
        check_holder(actor, selectors.allocation_get(actor=actor, allocation_id=allocation_id))
        services.delivery_answer(actor=actor, allocation_id=allocation_id, **input_of(self.DeliveryAnswerIn, request))
        return Response(allocation_out(actor, allocation_id))


class MeteringApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser]
    write_scope = "provide"

    class MeteringIn(serializers.Serializer):
        device_hours = DeviceHours(help_text="Delivered device-hours as a decimal string (at most 4 places); "
                                             "reports add up.")
        note = serializers.CharField(required=False, allow_blank=True, max_length=200)

    @extend_schema(tags=TAG, request=MeteringIn, responses={201: MeteringOut, **errors(400, 401, 403, 404, 409, 422, 429)},
                   summary="Provider: report delivered device-hours (refused beyond the allocation or outside its "
                           "window)",
                   examples=[OpenApiExample("a day's hours", request_only=True, value={"device_hours": "96.5"})])
    @idempotent()
    def post(self, request, allocation_id: int):
        actor = request_actor(request)
        check_provider(actor, selectors.allocation_get(actor=actor, allocation_id=allocation_id))
        report = services.metering_report(actor=actor, allocation_id=allocation_id, **input_of(self.MeteringIn, request))
        allocation = selectors.allocation_detail(actor=actor, allocation_id=allocation_id)
        return Response(MeteringOut({"report": report, "allocation": allocation}, context=context_of(actor)).data,
                        status=status.HTTP_201_CREATED)


class MeteringCsvApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser, MultiPartParser]
    write_scope = "provide"

    class MeteringCsvIn(serializers.Serializer):
        csv = serializers.CharField(trim_whitespace=False, help_text="Header allocation_id,device_hours[,note], "
                                                                     "then a row per report; at most 1 MB.")
        first_row = serializers.IntegerField(default=1, min_value=1, max_value=10**9,
                                             help_text="The number of the first data row (for a file sent in parts).")

    class MeteringCsvUploadIn(serializers.Serializer):
        file = serializers.FileField(help_text="UTF-8 CSV, at most 1 MB.")
        first_row = serializers.IntegerField(default=1, min_value=1, max_value=10**9)

    class CsvIn(serializers.Serializer):
        csv = serializers.CharField(required=False, trim_whitespace=False)
        file = serializers.FileField(required=False)
        first_row = serializers.IntegerField(default=1, min_value=1, max_value=10**9)

    @extend_schema(
        tags=TAG, request={"application/json": MeteringCsvIn, "multipart/form-data": MeteringCsvUploadIn},
        responses={200: MeteringImportOut, 413: TOO_LARGE, **errors(400, 401, 403, 409, 429)},
        summary="Provider: report metering from a CSV, row by row (a bad row is refused with its reason)",
        examples=[OpenApiExample("two rows", request_only=True, value={
            "csv": "allocation_id,device_hours,note\n41,96.5,\n42,12,node 7 down 2 h\n", "first_row": 1})])
    @idempotent()
    def post(self, request):
        actor = request_actor(request)
        values = input_of(self.CsvIn, request)
        results = services.metering_import(actor=actor, text=csv_text(values), first_row=values["first_row"])
        reported = sum(1 for result in results if result["ok"])
        return Response({"rows": len(results), "reported": reported, "refused": len(results) - reported,
                         "results": results})


def csv_text(values: dict) -> str:
    """The CSV's text, from ``csv`` or the uploaded ``file``; at most ``CSV_MAX_BYTES``."""
    upload, text = values.get("file"), values.get("csv")
    if (upload is None) == (text is None):
        raise AppError("invalid", "Send the CSV either as the text \"csv\" (JSON) or as the file \"file\" (multipart).",
                       fields={"file": "One of csv or file."})
    size = upload.size if upload is not None else len(text.encode())
    if size > CSV_MAX_BYTES:
        raise AppError("file_too_large", f"A metering CSV is at most 1 MB; this one is {size:,} bytes. Send it in "
                       "parts, numbering each part's rows with first_row.", fields={"file": "At most 1 MB."},
                       status_code=413)
    if upload is None:
        return text
    try:
        return upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AppError("invalid", "The file is not UTF-8 text.", fields={"file": "Not UTF-8 text."}) from None
