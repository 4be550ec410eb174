"""Disputes: the holder opens one, a regulator decides it; everyone concerned reads them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import check_supervisor
from accounts.authentication import ScopedPermission, request_actor
from exchange.idempotency import idempotent
from exchange.wire import JsonParser
from marketplace.api.common import errors
from settlement import selectors, services
from settlement.access import check_holder, oversees
from settlement.api.common import TAG, DeviceHours, IdPagination, input_of
from settlement.api.out import DisputeOut
from settlement.models import Dispute
from supervision.disputes import dispute_decide


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
        dispute = services.dispute_open(actor=actor, allocation_id=allocation_id, **input_of(self.DisputeIn, request))
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
        # The console's decision: settlement's, plus the regulator's record and the consoles' stream.
        dispute = dispute_decide(actor=actor, dispute_id=dispute_id, **input_of(self.DisputeResolveIn, request))
        return Response(DisputeOut(dispute).data)
