"""Deposit and withdrawal requests over the API (exchange/funds.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ScopedPermission, request_actor
from exchange import funds
from exchange.errors import AppError
from exchange.idempotency import idempotent
from exchange.models import FundsRequest
from exchange.money import cny

TAG = ["funds"]


class FundsRequestOut(serializers.ModelSerializer):
    organisation = serializers.CharField(source="organisation.name")
    amount = serializers.SerializerMethodField()
    reference = serializers.CharField()

    class Meta:
        model = FundsRequest
        fields = ["id", "organisation", "direction", "amount", "bank_account", "reference", "state", "note",
                  "created_at", "decided_at"]

    def get_amount(self, request) -> str:
        return cny(request.amount_fen)


def _out(request: FundsRequest) -> dict:
    return FundsRequestOut(request).data


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise AppError("invalid", "Send a JSON object.")
    return request.data


class FundsRequestPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


class FundsRequestListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = FundsRequestPagination

    class FundsRequestIn(serializers.Serializer):
        direction = serializers.ChoiceField(choices=FundsRequest.Direction.choices)
        amount = serializers.CharField(help_text='CNY as a decimal string, e.g. "5000.00".')
        bank_account = serializers.CharField(required=False, help_text="A withdrawal's account to pay into.")

    @extend_schema(tags=TAG, responses=FundsRequestOut(many=True),
                   summary="Deposit and withdrawal requests: your organisation's (the treasury: everyone's), newest first")
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(funds.funds_request_list(actor=request_actor(request)), request, view=self)
        return paginator.get_paginated_response(FundsRequestOut(page, many=True).data)

    @extend_schema(tags=TAG, request=FundsRequestIn, responses={201: FundsRequestOut},
                   summary="Ask to pay money in (quote the reference on the transfer) or out")
    @idempotent()
    def post(self, request):
        data = _body(request)
        created = funds.funds_request_create(actor=request_actor(request), direction=data.get("direction"),
                                             amount=data.get("amount"), bank_account=data.get("bank_account", ""))
        return Response(_out(created), status=status.HTTP_201_CREATED)


class FundsRequestCancelApi(APIView):
    permission_classes = [ScopedPermission]

    @extend_schema(tags=TAG, request=None, responses=FundsRequestOut, summary="Cancel your pending request")
    @idempotent()
    def post(self, request, request_id: int):
        return Response(_out(funds.funds_request_cancel(actor=request_actor(request), request_id=request_id)))


class FundsNoteIn(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


class _TreasuryDecisionApi(APIView):
    """A decision of the operator's treasury on a pending request, with an optional note."""

    permission_classes = [ScopedPermission]
    write_scope = "funds"
    decide = None  # funds.funds_request_complete or funds.funds_request_refuse

    @idempotent()
    def post(self, request, request_id: int):
        note = _body(request).get("note", "")
        return Response(_out(type(self).decide(actor=request_actor(request), request_id=request_id, note=note)))


@extend_schema_view(post=extend_schema(
    tags=TAG, request=FundsNoteIn, responses=FundsRequestOut,
    summary="The money has moved: record the deposit or withdrawal (the operator's treasury)"))
class FundsRequestCompleteApi(_TreasuryDecisionApi):
    decide = staticmethod(funds.funds_request_complete)


@extend_schema_view(post=extend_schema(
    tags=TAG, request=FundsNoteIn, responses=FundsRequestOut,
    summary="Refuse a pending request, saying why (the operator's treasury)"))
class FundsRequestRefuseApi(_TreasuryDecisionApi):
    decide = staticmethod(funds.funds_request_refuse)
