"""``/api/v1/supervision/disputes/``: the dispute queue and the regulator's decision.

Nothing here reads a delivery: the console never sees a holder's access credentials.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_actor
from exchange.api import Money
from exchange.idempotency import idempotent
from exchange.wire import JsonParser
from marketplace.api.common import errors
from settlement.api.common import DEVICE_HOURS, DeviceHours, input_of
from settlement.models import Dispute, MeterReport
from supervision.api_participants import TAG, ConsolePagination, ConsolePermission, NamedOut, query_of
from supervision.disputes import dispute_decide, dispute_facts, dispute_queue


class ReportOut(serializers.Serializer):
    id = serializers.IntegerField()
    device_hours = serializers.DecimalField(**DEVICE_HOURS)
    source = serializers.ChoiceField(choices=MeterReport.Source.values)
    note = serializers.CharField()
    reported_by = serializers.EmailField(source="reported_by.email")
    reported_at = serializers.DateTimeField(source="created_at")


class DisputedAllocationOut(serializers.Serializer):
    id = serializers.IntegerField(source="allocation.id")
    instrument = serializers.CharField(source="allocation.trade.instrument.code")
    window_start = serializers.DateTimeField(source="window.start")
    window_end = serializers.DateTimeField(source="window.end")
    disputes_until = serializers.DateTimeField(source="window.dispute_until")
    price = Money(source="allocation.trade.price_fen", help_text="CNY per SCU·h.")
    scu_h = serializers.IntegerField(source="allocation.scu_h")
    device_hours = serializers.DecimalField(source="allocation.device_hours", **DEVICE_HOURS)
    asset = serializers.CharField(source="allocation.listing_period.listing.asset.name")
    device_type = serializers.CharField(source="allocation.listing_period.listing.device_type.__str__")
    factor = serializers.DecimalField(source="allocation.listing_period.listing.factor", max_digits=10,
                                      decimal_places=4, help_text="Attested SCU per device-hour.")
    settled_at = serializers.DateTimeField(source="allocation.settled_at", allow_null=True,
                                           help_text="Set once the allocation settled (after the decision).")


class PartiesOut(serializers.Serializer):
    holder = NamedOut(source="allocation.holder", help_text="Bought the capacity and disputes.")
    seller = NamedOut(source="allocation.trade.seller")
    provider = NamedOut(help_text="Operates the asset; delivered and metered.")


class ConsoleMeteringOut(serializers.Serializer):
    reports = ReportOut(many=True)
    metered_device_hours = serializers.DecimalField(**DEVICE_HOURS)
    metered_scu_h = serializers.IntegerField()
    deliverable_device_hours = serializers.DecimalField(**DEVICE_HOURS,
                                                        help_text="The most an adjustment may set.")
    deliverable_scu_h = serializers.IntegerField()


class ConsoleDisputeOut(serializers.Serializer):
    id = serializers.IntegerField(source="dispute.id")
    state = serializers.ChoiceField(source="dispute.state", choices=Dispute.State.values)
    reason = serializers.CharField(source="dispute.reason")
    report_id = serializers.IntegerField(source="dispute.report_id", allow_null=True,
                                         help_text="The metering report disputed, if the holder named one.")
    opened_by = serializers.EmailField(source="dispute.opened_by.email")
    opened_at = serializers.DateTimeField(source="dispute.opened_at")
    allocation = DisputedAllocationOut(source="*")
    parties = PartiesOut(source="*")
    metering = ConsoleMeteringOut(source="*")
    delivered_device_hours = serializers.DecimalField(source="dispute.delivered_device_hours", allow_null=True,
                                                      **DEVICE_HOURS, help_text="Set by an adjustment.")
    resolution_note = serializers.CharField(source="dispute.resolution_note")
    resolved_by = serializers.EmailField(source="dispute.resolved_by.email", allow_null=True, default=None)
    resolved_at = serializers.DateTimeField(source="dispute.resolved_at", allow_null=True)


def dispute_out(dispute_id: int) -> dict:
    return ConsoleDisputeOut(dispute_facts(dispute_queue().get(pk=dispute_id))).data


class ConsoleDisputeListApi(APIView):
    permission_classes = [ConsolePermission]
    pagination_class = ConsolePagination

    class Filter(serializers.Serializer):
        state = serializers.ChoiceField(required=False, choices=Dispute.State.values)

    @extend_schema(tags=TAG, parameters=[Filter], responses=ConsoleDisputeOut(many=True),
                   summary="Regulator: disputes with allocation, parties and metering; open ones first, oldest first")
    def get(self, request):
        values = query_of(self.Filter, request)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(dispute_queue(state=values.get("state")), request, view=self)
        return paginator.get_paginated_response(ConsoleDisputeOut([dispute_facts(d) for d in page], many=True).data)


class ConsoleDisputeDecisionApi(APIView):
    permission_classes = [ConsolePermission]
    parser_classes = [JsonParser]

    class DecisionIn(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=["uphold", "adjust"],
                                          help_text="uphold: the metering stands; adjust: set what was delivered.")
        note = serializers.CharField(max_length=1000, help_text="The reason for the decision, sent to the parties.")
        delivered_device_hours = DeviceHours(required=False, allow_null=True,
                                             help_text="To adjust: the device-hours that count as delivered.")

    @extend_schema(tags=TAG, request=DecisionIn,
                   responses={200: ConsoleDisputeOut, **errors(400, 401, 403, 404, 409, 422)},
                   summary="Regulator: decide a dispute (uphold the metering, or adjust the delivered amount)",
                   examples=[OpenApiExample("adjust", request_only=True, value={
                       "outcome": "adjust", "delivered_device_hours": "72.5",
                       "note": "The provider's own logs show node 7 down for a day."})])
    @idempotent()
    def post(self, request, dispute_id: int):
        dispute = dispute_decide(actor=request_actor(request), dispute_id=dispute_id,
                                 **input_of(self.DecisionIn, request))
        return Response(dispute_out(dispute.pk))
