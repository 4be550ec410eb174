"""Settlements an organisation took part in, and the published SLA credit schedule."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ScopedPermission, request_actor
from settlement import selectors
from settlement.api.common import TAG, context_of
from settlement.api.out import SettlementOut, SlaScheduleOut


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
        return paginator.get_paginated_response(SettlementOut(page, many=True, context=context_of(actor)).data)


class SlaScheduleApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(tags=TAG, responses=SlaScheduleOut, summary="The published SLA credit schedule")
    def get(self, request):
        return Response(SlaScheduleOut({
            "rule": "An allocation delivered below a step's share of its SCU·h earns the holder that step's credit, "
                    "as a share of the allocation's value; the largest credit among the steps that apply.",
            "steps": selectors.sla_schedule(),
        }).data)
