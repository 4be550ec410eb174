"""Trading API: instruments and market data, orders, balances, fills, allocations."""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import check_funds_recorder
from accounts.authentication import ScopedPermission, request_actor
from exchange import ledger, market_data, selectors, services
from exchange.errors import AppError
from exchange.idempotency import idempotent
from exchange.models import Allocation, FundsRequest, Instrument, Order, Trade
from exchange.money import cny, fen_from_cny


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^-?\d+\.\d{2}$", "example": "18.50", "nullable": True})
class Money(serializers.Field):
    """Integer fen in the store, a decimal string of CNY on the wire."""

    def to_representation(self, value):
        return cny(value)

    def to_internal_value(self, data):
        try:
            return fen_from_cny(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class InstrumentOut(serializers.ModelSerializer):
    compute_class = serializers.CharField(source="compute_class.code")
    hub = serializers.CharField(source="hub.code")
    tick = Money(source="tick_fen")
    reference_price = Money(source="reference_price_fen")
    last_price = Money(source="last_price_fen")
    best_bid = Money(source="best_bid_fen")
    best_ask = Money(source="best_ask_fen")

    class Meta:
        model = Instrument
        fields = ["code", "compute_class", "hub", "delivery_start", "delivery_end", "gate_closure_at", "state",
                  "auction_ends_at", "tick", "lot_scu_h", "reference_price", "band_bps", "last_price", "best_bid",
                  "best_ask", "md_seq"]


class InstrumentPagination(CursorPagination):
    ordering = ("delivery_start", "id")
    page_size = 100


class InstrumentListApi(APIView):
    permission_classes = [AllowAny]
    pagination_class = InstrumentPagination

    @extend_schema(
        responses=InstrumentOut(many=True), summary="Listed instruments",
        parameters=[OpenApiParameter("state"), OpenApiParameter("compute_class"), OpenApiParameter("hub")],
    )
    def get(self, request):
        queryset = selectors.instrument_list(
            state=request.query_params.get("state"), class_code=request.query_params.get("compute_class"),
            hub_code=request.query_params.get("hub"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(InstrumentOut(page, many=True).data)


class InstrumentDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=InstrumentOut, summary="One instrument with its ticker")
    def get(self, request, code: str):
        instrument = get_object_or_404(selectors.instrument_list(), code=code)
        data = InstrumentOut(instrument).data
        data["ticker"] = selectors.ticker(instrument=instrument)
        return Response(data)


class DepthApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(summary="Aggregated depth snapshot with its market-data sequence number",
                   responses={200: dict})
    def get(self, request, code: str):
        instrument = get_object_or_404(Instrument, code=code)
        return Response(market_data.depth_snapshot(instrument))


class TradeOut(serializers.ModelSerializer):
    price = Money(source="price_fen")

    class Meta:
        model = Trade
        fields = ["id", "price", "qty", "aggressor", "created_at"]


class TapePagination(CursorPagination):
    ordering = "-id"
    page_size = 100


class TapeApi(APIView):
    permission_classes = [AllowAny]
    pagination_class = TapePagination

    @extend_schema(responses=TradeOut(many=True), summary="The public trade tape, newest first")
    def get(self, request, code: str):
        instrument = get_object_or_404(Instrument, code=code)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(Trade.objects.filter(instrument=instrument), request, view=self)
        return paginator.get_paginated_response(TradeOut(page, many=True).data)


class CandlesApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(summary="OHLC candles", parameters=[OpenApiParameter("interval", enum=["1m", "1h", "1d"])],
                   responses={200: dict})
    def get(self, request, code: str):
        instrument = get_object_or_404(Instrument, code=code)
        interval = request.query_params.get("interval", "1m")
        if interval not in selectors.CANDLE_INTERVALS:
            raise AppError("invalid", "interval must be 1m, 1h or 1d.", fields={"interval": "One of 1m, 1h, 1d."})
        return Response({"instrument": code, "interval": interval,
                         "candles": selectors.candles(instrument=instrument, interval=interval)})


class PriceIndexApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(summary="Daily price index (VWAP) per compute class and hub", responses={200: dict},
                   parameters=[OpenApiParameter("compute_class"), OpenApiParameter("hub")])
    def get(self, request):
        return Response({"method": selectors.INDEX_METHOD, "index": selectors.price_index(
            class_code=request.query_params.get("compute_class"), hub_code=request.query_params.get("hub"))})


class OrderOut(serializers.ModelSerializer):
    instrument = serializers.CharField(source="instrument.code")
    price = Money(source="price_fen")
    held = Money(source="held_fen")

    class Meta:
        model = Order
        fields = ["id", "client_order_id", "instrument", "side", "type", "tif", "post_only", "price", "qty",
                  "filled", "remaining", "status", "reason", "held", "expires_at", "created_at", "updated_at"]


_timestamp = serializers.DateTimeField()
_last_placed_at: tuple = (None, None)


def _placed_at(moment) -> str:
    """OrderOut's created_at text, formatted once per batch: orders placed together share
    the statement's timestamp, and formatting it costs as much as the rest of the body."""
    global _last_placed_at
    if _last_placed_at[0] != moment:
        _last_placed_at = (moment, _timestamp.to_representation(moment))
    return _last_placed_at[1]


def order_out_placed(*, code: str, request, result) -> dict:
    """``OrderOut`` of an order cx_place_orders has just accepted, from the request and the
    statement's results alone (no read back): what a later GET of the order answers until
    the engine takes it. ``code`` is the instrument's; ``request`` an OrderRequest."""
    created_at = _placed_at(result.created_at)
    return {
        "id": result.order_id, "client_order_id": request.client_order_id, "instrument": code,
        "side": request.side, "type": request.type, "tif": request.tif, "post_only": request.post_only,
        "price": cny(request.price_fen), "qty": request.qty, "filled": 0, "remaining": request.qty,
        "status": Order.Status.ACCEPTED.value, "reason": "", "held": cny(result.held_fen),
        "expires_at": _timestamp.to_representation(request.expires_at) if request.expires_at else None,
        "created_at": created_at,
        "updated_at": created_at,
    }


def order_out(order_id: int) -> dict:
    return OrderOut(Order.objects.select_related("instrument").get(pk=order_id)).data


class OrderIn(serializers.Serializer):
    """Documented shape of one order; order entry parses it itself (exchange/gateway.py)."""

    instrument = serializers.CharField(help_text="Instrument code, e.g. AI80.NX.2026-11-27")
    side = serializers.ChoiceField(choices=["buy", "sell"])
    type = serializers.ChoiceField(choices=["limit", "market"], default="limit")
    tif = serializers.ChoiceField(choices=["GTC", "GTD", "IOC", "FOK"], default="GTC")
    post_only = serializers.BooleanField(default=False)
    price = serializers.CharField(required=False, help_text="CNY per SCU·h as a string, tick 0.01")
    qty = serializers.IntegerField(min_value=1, help_text="SCU·h")
    expires_at = serializers.DateTimeField(required=False, help_text="GTD only")
    protect_ticks = serializers.IntegerField(required=False, help_text="Market only: ticks through the best price")
    client_order_id = serializers.CharField(required=False, max_length=64,
                                            help_text="Unique per organisation; a repeat returns the first order")


class OrderPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


ORDER_EXAMPLE = OpenApiExample(
    "limit bid", request_only=True,
    value={"instrument": "AI80.NX.2026-11-27", "side": "buy", "price": "18.50", "qty": 100, "client_order_id": "bid-1"},
)


class OrderListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = OrderPagination

    @extend_schema(responses=OrderOut(many=True), summary="Your organisation's orders, newest first",
                   parameters=[OpenApiParameter("status"), OpenApiParameter("instrument")])
    def get(self, request):
        actor = request_actor(request)
        queryset = selectors.order_list(organisation_id=actor.membership.organisation_id,
                                        status=request.query_params.get("status"),
                                        instrument_code=request.query_params.get("instrument"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(OrderOut(page, many=True).data)

    @extend_schema(request=OrderIn, responses={201: OrderOut, 200: OrderOut}, examples=[ORDER_EXAMPLE],
                   summary="Place an order (201; 200 with the first order for a repeated client_order_id)")
    @idempotent()
    def post(self, request):
        order, created = services.order_place(actor=request_actor(request), data=request.data)
        return Response(OrderOut(order).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderBatchApi(APIView):
    permission_classes = [ScopedPermission]

    class BatchIn(serializers.Serializer):
        orders = OrderIn(many=True)

    @extend_schema(request=BatchIn, responses={200: dict}, summary="Place up to 1,000 orders, each with its own result")
    @idempotent()
    def post(self, request):
        items = request.data.get("orders") if isinstance(request.data, dict) else None
        return Response({"results": services.orders_place_batch(actor=request_actor(request), items=items)})


class OrderDetailApi(APIView):
    permission_classes = [ScopedPermission]

    class AmendIn(serializers.Serializer):
        price = serializers.CharField(required=False)
        qty = serializers.IntegerField(required=False, min_value=1)

    def _order(self, request, order_id: int) -> Order:
        actor = request_actor(request)
        return get_object_or_404(Order.objects.select_related("instrument"), pk=order_id,
                                 organisation_id=actor.membership.organisation_id)

    @extend_schema(responses=OrderOut, summary="One of your orders")
    def get(self, request, order_id: int):
        return Response(OrderOut(self._order(request, order_id)).data)

    @extend_schema(request=None, responses={202: OrderOut}, summary="Cancel (the engine confirms on the event stream)")
    def delete(self, request, order_id: int):
        order = services.order_cancel(actor=request_actor(request), order_id=order_id)
        return Response(OrderOut(order).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=AmendIn, responses={202: OrderOut},
                   summary="Amend: a quantity cut keeps time priority, a price change loses it")
    def patch(self, request, order_id: int):
        order = services.order_amend(actor=request_actor(request), order_id=order_id, data=request.data)
        return Response(OrderOut(order).data, status=status.HTTP_202_ACCEPTED)


class BalanceApi(APIView):
    permission_classes = [ScopedPermission]

    @extend_schema(summary="Your organisation's balances in CNY", responses={200: dict})
    def get(self, request):
        actor = request_actor(request)
        return Response({kind: cny(value) for kind, value in ledger.balances(organisation=actor.organisation).items()})


class FillOut(serializers.ModelSerializer):
    instrument = serializers.CharField(source="instrument.code")
    price = Money(source="price_fen")
    side = serializers.SerializerMethodField()
    fee = serializers.SerializerMethodField()

    class Meta:
        model = Trade
        fields = ["id", "instrument", "side", "price", "qty", "fee", "aggressor", "buy_order_id", "sell_order_id", "created_at"]

    def get_side(self, trade) -> str:
        return "buy" if trade.buyer_id == self.context["organisation_id"] else "sell"

    def get_fee(self, trade) -> str:
        mine = trade.buyer_fee_fen if trade.buyer_id == self.context["organisation_id"] else trade.seller_fee_fen
        return cny(mine)


class FillListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = OrderPagination

    @extend_schema(responses=FillOut(many=True), summary="Your organisation's trades, newest first",
                   parameters=[OpenApiParameter("instrument", description="Only this instrument's (its code).")])
    def get(self, request):
        org_id = request_actor(request).membership.organisation_id
        queryset = selectors.fill_list(organisation_id=org_id, instrument_code=request.query_params.get("instrument"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(FillOut(page, many=True, context={"organisation_id": org_id}).data)


class AllocationOut(serializers.ModelSerializer):
    instrument = serializers.CharField(source="trade.instrument.code")
    asset = serializers.CharField(source="listing_period.listing.asset.name")
    asset_id = serializers.IntegerField(source="listing_period.listing.asset_id")
    device_type = serializers.CharField(source="listing_period.listing.device_type.__str__")

    class Meta:
        model = Allocation
        fields = ["id", "trade_id", "instrument", "asset", "asset_id", "device_type", "scu_h", "device_hours",
                  "resold_scu_h", "source_id"]


class AllocationListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = OrderPagination

    @extend_schema(responses=AllocationOut(many=True), summary="Capacity allocated to your organisation")
    def get(self, request):
        org_id = request_actor(request).membership.organisation_id
        queryset = Allocation.objects.filter(holder_id=org_id).select_related(
            "trade__instrument", "listing_period__listing__asset", "listing_period__listing__device_type")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(AllocationOut(page, many=True).data)


class FundsApi(APIView):
    """Deposits and withdrawals are recorded by the exchange operator's treasury
    (accounts.access.check_funds_recorder)."""

    permission_classes = [ScopedPermission]
    write_scope = "funds"

    class FundsIn(serializers.Serializer):
        organisation_id = serializers.IntegerField()
        direction = serializers.ChoiceField(choices=FundsRequest.Direction.choices)
        amount = Money()
        memo = serializers.CharField(required=False, allow_blank=True, max_length=200)

    @extend_schema(request=FundsIn, responses={201: dict}, summary="Record a deposit or withdrawal (operator only)")
    @idempotent()
    def post(self, request):
        check_funds_recorder(request_actor(request))
        data = self.FundsIn(data=request.data)
        data.is_valid(raise_exception=True)
        from accounts.models import Organisation

        organisation = Organisation.objects.filter(pk=data.validated_data["organisation_id"]).first()
        if organisation is None:
            raise AppError("invalid", "No such organisation.", fields={"organisation_id": "Unknown."})
        move = ledger.deposit if data.validated_data["direction"] == "deposit" else ledger.withdraw
        with transaction.atomic():
            journal = move(organisation=organisation, amount_fen=data.validated_data["amount"],
                           memo=data.validated_data.get("memo", ""))
        return Response({"journal_id": journal.id, "balances": {
            k: cny(v) for k, v in ledger.balances(organisation=organisation).items()}}, status=status.HTTP_201_CREATED)
