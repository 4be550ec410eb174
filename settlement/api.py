"""Settlement API: allocations after the trade, delivery, metering, disputes, settlements.

Thin views: each reads its input with a nested serializer and calls one service or
selector. Writes ask the access check before reading the body (a caller who may not act
learns nothing from its body's errors); the service checks again under the allocation's
lock. Delivery credentials appear only in ``GET allocations/{id}/`` to the holder's members.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import check_supervisor
from accounts.authentication import ScopedPermission, request_actor
from exchange.api import Money
from exchange.errors import AppError
from exchange.idempotency import idempotent
from exchange.money import cny
from exchange.wire import JsonParser
from marketplace.api.common import ErrorOut, errors
from settlement import selectors, services
from settlement.access import check_holder, check_provider, oversees
from settlement.models import Dispute

TAG = ["Settlement"]
CSV_MAX_BYTES = 1024 * 1024
DEVICE_HOURS = {"max_digits": 18, "decimal_places": 4}
SELLER_MONEY = {"type": "string", "format": "decimal", "pattern": r"^-?\d+\.\d{2}$", "nullable": True,
                "description": "CNY; null unless your organisation sold the capacity."}
TOO_LARGE = OpenApiResponse(ErrorOut, description="The CSV is over 1 MB (code `file_too_large`); split it.")


def _input(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _related(obj, name: str):
    """A reverse one-to-one joined by select_related, or None where there is no row."""
    try:
        return getattr(obj, name)
    except AttributeError:  # RelatedObjectDoesNotExist is one
        return None


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^\d{1,9}(\.\d{1,4})?$", "example": "12.5"})
class DeviceHours(serializers.Field):
    """Passed on as sent: ``services.device_hours_parse`` reads it (a decimal string or an
    integer, never a float) and names the field in its refusal."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return str(value)


class IdPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


# --------------------------------------------------------------------------- output


class WindowOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    dispute_until = serializers.DateTimeField(help_text="Metering and disputes are taken until then.")


class DeliveryOut(serializers.Serializer):
    state = serializers.ChoiceField(choices=["started", "confirmed", "missing"])
    endpoint = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    answered_at = serializers.DateTimeField(allow_null=True)
    holder_note = serializers.CharField()


class SettlementSummaryOut(serializers.Serializer):
    settled_at = serializers.DateTimeField()
    delivered_scu_h = serializers.IntegerField()
    refunded_scu_h = serializers.IntegerField()
    paid = Money(source="paid_fen", help_text="Paid out of escrow for the delivered SCU·h.")
    refund = Money(source="refund_fen")
    sla_credit_bp = serializers.IntegerField(help_text="Of the allocation's value, in basis points.")
    sla_credit = Money(source="sla_credit_fen")
    payout = serializers.SerializerMethodField()

    @extend_schema_field(SELLER_MONEY)
    def get_payout(self, settlement) -> str | None:
        return cny(settlement.payout_fen) if settlement.seller_id == self.context["organisation_id"] else None


class AllocationStatusOut(serializers.Serializer):
    id = serializers.IntegerField()
    trade_id = serializers.IntegerField()
    instrument = serializers.CharField(source="trade.instrument.code")
    window = serializers.SerializerMethodField()
    price = Money(source="trade.price_fen", help_text="The trade's price, CNY per SCU·h.")
    asset_id = serializers.IntegerField(source="listing_period.listing.asset_id")
    asset = serializers.CharField(source="listing_period.listing.asset.name")
    device_type = serializers.CharField(source="listing_period.listing.device_type.__str__")
    factor = serializers.DecimalField(source="listing_period.listing.factor", max_digits=10, decimal_places=4,
                                      help_text="Attested SCU per device-hour.")
    scu_h = serializers.IntegerField()
    device_hours = serializers.DecimalField(**DEVICE_HOURS)
    resold_scu_h = serializers.IntegerField()
    source_id = serializers.IntegerField(allow_null=True, help_text="The allocation this one was resold from.")
    roles = serializers.SerializerMethodField()
    delivery = serializers.SerializerMethodField()
    metered_device_hours = serializers.DecimalField(**DEVICE_HOURS)
    metered_scu_h = serializers.SerializerMethodField()
    open_dispute_id = serializers.IntegerField(allow_null=True)
    settled_at = serializers.DateTimeField(allow_null=True)
    settlement = serializers.SerializerMethodField()

    @extend_schema_field(WindowOut)
    def get_window(self, allocation) -> dict:
        return WindowOut(selectors.allocation_window(allocation)).data

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=["holder", "seller", "provider"])))
    def get_roles(self, allocation) -> list[str]:
        return selectors.allocation_roles(allocation, self.context["organisation_id"])

    @extend_schema_field(DeliveryOut(allow_null=True))
    def get_delivery(self, allocation) -> dict | None:
        delivery = _related(allocation, "delivery")
        return None if delivery is None else DeliveryOut(delivery).data

    def get_metered_scu_h(self, allocation) -> int:
        return selectors.scu_h_of(allocation.metered_device_hours, allocation.listing_period.listing.factor)

    @extend_schema_field(SettlementSummaryOut(allow_null=True))
    def get_settlement(self, allocation) -> dict | None:
        settlement = _related(allocation, "settlement")
        return None if settlement is None else SettlementSummaryOut(settlement, context=self.context).data


class AllocationStatusDetailOut(AllocationStatusOut):
    """Documents the detail only: the view adds ``credentials`` for the holder's members."""

    credentials = serializers.CharField(
        required=False, allow_null=True,
        help_text="Only for members of the holding organisation (absent for anyone else): the access details the "
                  "provider gave, empty if none; null before delivery started or if they can no longer be read.")


class MeterReportOut(serializers.Serializer):
    id = serializers.IntegerField()
    allocation_id = serializers.IntegerField()
    device_hours = serializers.DecimalField(**DEVICE_HOURS)
    source = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class MeteringOut(serializers.Serializer):
    report = MeterReportOut()
    allocation = AllocationStatusOut()


class MeteringRowOut(serializers.Serializer):
    row = serializers.IntegerField()
    allocation_id = serializers.JSONField(help_text="The id, or the text of the row when it is not one.")
    ok = serializers.BooleanField()
    report_id = serializers.IntegerField(required=False)
    code = serializers.CharField(required=False, help_text="Why the row was refused.")
    detail = serializers.CharField(required=False)


class MeteringImportOut(serializers.Serializer):
    rows = serializers.IntegerField()
    reported = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = MeteringRowOut(many=True)


class DisputeOut(serializers.Serializer):
    id = serializers.IntegerField()
    allocation_id = serializers.IntegerField()
    instrument = serializers.CharField(source="allocation.trade.instrument.code")
    report_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    state = serializers.ChoiceField(choices=Dispute.State.values)
    opened_at = serializers.DateTimeField()
    delivered_device_hours = serializers.DecimalField(**DEVICE_HOURS, allow_null=True,
                                                      help_text="Set by an adjustment.")
    resolution_note = serializers.CharField()
    resolved_at = serializers.DateTimeField(allow_null=True)


class PayoutOut(serializers.Serializer):
    share_bp = serializers.IntegerField()
    amount = Money(source="amount_fen")


class SettlementOut(serializers.Serializer):
    allocation_id = serializers.IntegerField()
    trade_id = serializers.IntegerField()
    instrument = serializers.CharField(source="trade.instrument.code")
    roles = serializers.SerializerMethodField()
    price = Money(source="price_fen")
    scu_h = serializers.IntegerField()
    delivered_scu_h = serializers.IntegerField()
    refunded_scu_h = serializers.IntegerField()
    paid = Money(source="paid_fen")
    refund = Money(source="refund_fen")
    sla_credit_bp = serializers.IntegerField()
    sla_credit = Money(source="sla_credit_fen")
    credit_debt = Money(source="credit_debt_fen", help_text="Of the credit, what the seller owes the holder.")
    fee = serializers.SerializerMethodField()
    fee_debt = serializers.SerializerMethodField()
    debt_repaid = serializers.SerializerMethodField()
    payout = serializers.SerializerMethodField()
    payouts = PayoutOut(many=True, source="payouts_to_caller", help_text="Parts of the proceeds paid to you.")
    settled_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=["holder", "seller", "owner"])))
    def get_roles(self, settlement) -> list[str]:
        org_id = self.context["organisation_id"]
        return [role for role, yes in (("holder", settlement.holder_id == org_id),
                                       ("seller", settlement.seller_id == org_id),
                                       ("owner", bool(settlement.payouts_to_caller))) if yes]

    def _sellers(self, settlement, fen: int) -> str | None:
        return cny(fen) if settlement.seller_id == self.context["organisation_id"] else None

    @extend_schema_field(SELLER_MONEY)
    def get_fee(self, settlement) -> str | None:
        return self._sellers(settlement, settlement.fee_fen)

    @extend_schema_field(SELLER_MONEY)
    def get_fee_debt(self, settlement) -> str | None:
        return self._sellers(settlement, settlement.fee_debt_fen)

    @extend_schema_field(SELLER_MONEY)
    def get_debt_repaid(self, settlement) -> str | None:
        return self._sellers(settlement, settlement.debt_repaid_fen)

    @extend_schema_field(SELLER_MONEY)
    def get_payout(self, settlement) -> str | None:
        return self._sellers(settlement, settlement.payout_fen)


class SlaStepOut(serializers.Serializer):
    below_bp = serializers.IntegerField()
    credit_bp = serializers.IntegerField()
    below_percent = serializers.SerializerMethodField()
    credit_percent = serializers.SerializerMethodField()

    def get_below_percent(self, step) -> str:
        return f"{step.below_bp / 100:.2f}"

    def get_credit_percent(self, step) -> str:
        return f"{step.credit_bp / 100:.2f}"


class SlaScheduleOut(serializers.Serializer):
    rule = serializers.CharField()
    steps = SlaStepOut(many=True)


def _context(actor) -> dict:
    return {"organisation_id": actor.membership.organisation_id}


def _allocation_out(actor, allocation_id: int) -> dict:
    allocation = selectors.allocation_detail(actor=actor, allocation_id=allocation_id)
    return AllocationStatusOut(allocation, context=_context(actor)).data


# --------------------------------------------------------------------------- allocations


class AllocationListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = IdPagination

    @extend_schema(tags=TAG, responses=AllocationStatusOut(many=True),
                   summary="Allocations your organisation holds, sold or delivers, newest first")
    def get(self, request):
        actor = request_actor(request)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.allocation_list(actor=actor), request, view=self)
        return paginator.get_paginated_response(AllocationStatusOut(page, many=True, context=_context(actor)).data)


class AllocationDetailApi(APIView):
    permission_classes = [ScopedPermission]

    @extend_schema(tags=TAG, responses={200: AllocationStatusDetailOut, **errors(404)},
                   summary="One allocation; its access credentials for the holder's members only")
    def get(self, request, allocation_id: int):
        actor = request_actor(request)
        allocation = selectors.allocation_detail(actor=actor, allocation_id=allocation_id)
        data = AllocationStatusOut(allocation, context=_context(actor)).data
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
        services.delivery_start(actor=actor, allocation_id=allocation_id, **_input(self.DeliveryIn, request))
        return Response(_allocation_out(actor, allocation_id))


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
        services.delivery_answer(actor=actor, allocation_id=allocation_id, **_input(self.DeliveryAnswerIn, request))
        return Response(_allocation_out(actor, allocation_id))


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
        report = services.metering_report(actor=actor, allocation_id=allocation_id, **_input(self.MeteringIn, request))
        allocation = selectors.allocation_detail(actor=actor, allocation_id=allocation_id)
        return Response(MeteringOut({"report": report, "allocation": allocation}, context=_context(actor)).data,
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
        values = _input(self.CsvIn, request)
        results = services.metering_import(actor=actor, text=_csv_text(values), first_row=values["first_row"])
        reported = sum(1 for result in results if result["ok"])
        return Response({"rows": len(results), "reported": reported, "refused": len(results) - reported,
                         "results": results})


def _csv_text(values: dict) -> str:
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


# --------------------------------------------------------------------------- disputes


class DisputeOpenApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser]
    write_scope = "trade"

    class DisputeIn(serializers.Serializer):
        reason = serializers.CharField(max_length=1000)
        report_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1,
                                             help_text="The metering report disputed, if one.")

    @extend_schema(tags=TAG, request=DisputeIn, responses={201: DisputeOut, **errors(400, 401, 403, 404, 409, 429)},
                   summary="Holder: dispute the metering (until the dispute window closes)")
    @idempotent()
    def post(self, request, allocation_id: int):
        actor = request_actor(request)
        check_holder(actor, selectors.allocation_get(actor=actor, allocation_id=allocation_id))
        dispute = services.dispute_open(actor=actor, allocation_id=allocation_id, **_input(self.DisputeIn, request))
        return Response(DisputeOut(dispute).data, status=status.HTTP_201_CREATED)


class DisputeListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = IdPagination

    class DisputeFilter(serializers.Serializer):
        state = serializers.ChoiceField(required=False, choices=Dispute.State.values)

    @extend_schema(tags=TAG, parameters=[DisputeFilter], responses=DisputeOut(many=True),
                   summary="Disputes: a regulator sees all, others those on their allocations; newest first")
    def get(self, request):
        actor = request_actor(request)
        values = self.DisputeFilter(data=request.query_params)
        values.is_valid(raise_exception=True)
        queryset = selectors.dispute_list(actor=actor, oversees=oversees(actor), state=values.validated_data.get("state"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(DisputeOut(page, many=True).data)


class DisputeResolveApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser]
    write_scope = "supervise"

    class DisputeResolveIn(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=["uphold", "adjust"])
        note = serializers.CharField(max_length=1000, help_text="The reason for the decision.")
        delivered_device_hours = DeviceHours(required=False, allow_null=True,
                                             help_text="To adjust: what counts as delivered.")

    @extend_schema(tags=TAG, request=DisputeResolveIn,
                   responses={200: DisputeOut, **errors(400, 401, 403, 404, 409, 422, 429)},
                   summary="Regulator: uphold the metering or adjust the delivered amount")
    @idempotent()
    def post(self, request, dispute_id: int):
        actor = request_actor(request)
        check_supervisor(actor)
        dispute = services.dispute_resolve(actor=actor, dispute_id=dispute_id, **_input(self.DisputeResolveIn, request))
        return Response(DisputeOut(dispute).data)


# --------------------------------------------------------------------------- settlements


class SettlementPagination(CursorPagination):
    ordering = ("-settled_at", "-allocation_id")
    page_size = 50


class SettlementListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = SettlementPagination

    @extend_schema(tags=TAG, responses=SettlementOut(many=True),
                   summary="Settlements your organisation held, sold or was paid a part of, newest first")
    def get(self, request):
        actor = request_actor(request)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.settlement_list(actor=actor), request, view=self)
        return paginator.get_paginated_response(SettlementOut(page, many=True, context=_context(actor)).data)


class SlaScheduleApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(tags=TAG, responses=SlaScheduleOut, summary="The published SLA credit schedule")
    def get(self, request):
        return Response(SlaScheduleOut({
            "rule": "An allocation delivered below a step's share of its SCU·h earns the holder that step's credit, "
                    "as a share of the allocation's value; the largest credit among the steps that apply.",
            "steps": selectors.sla_schedule(),
        }).data)
