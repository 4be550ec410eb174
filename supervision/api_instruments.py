"""``/api/v1/supervision/``: compute classes, hubs and instruments, and the regulator's actions
on them (open early, halt, resume, price band). Reading needs the console (a regulator with
``read``); every action needs ``supervise`` and a reason, and honours ``Idempotency-Key``."""

from __future__ import annotations

from datetime import date

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ScopedPermission, request_actor
from exchange.api import Money
from exchange.errors import AppError
from exchange.idempotency import idempotent
from exchange.wire import JsonParser
from marketplace.api.common import errors
from supervision import instruments as service
from supervision.access import check_console_reader, check_supervisor

TAG = ["Supervision"]
DAY_MIN, DAY_MAX = date(2000, 1, 1), date(2999, 12, 31)


class ConsolePermission(ScopedPermission):
    """Reads: the console's reader (a regulator with ``read``); writes: the regulator's
    ``supervise`` (the views' ``write_scope``)."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        actor = request_actor(request)
        if request.method in permissions.SAFE_METHODS:
            check_console_reader(actor)
        else:
            check_supervisor(actor)
        return True


def _input(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


# --- output ------------------------------------------------------------------------------------


class SupervisedHubOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    instruments_trading = serializers.IntegerField(help_text="Pre-open, continuous or in an auction.")
    instruments_halted = serializers.IntegerField()


class SupervisedClassOut(SupervisedHubOut):
    category = serializers.CharField()
    period_hours = serializers.IntegerField()


class SupervisedInstrumentOut(serializers.Serializer):
    code = serializers.CharField()
    compute_class = serializers.CharField(source="compute_class.code")
    hub = serializers.CharField(source="hub.code")
    delivery_start = serializers.DateTimeField()
    delivery_end = serializers.DateTimeField()
    gate_closure_at = serializers.DateTimeField()
    state = serializers.CharField()
    auction_ends_at = serializers.DateTimeField(allow_null=True)
    band_bps = serializers.IntegerField()
    reference_price = Money(source="reference_price_fen")
    last_price = Money(source="last_price_fen")
    best_bid = Money(source="best_bid_fen")
    best_ask = Money(source="best_ask_fen")
    open_orders = serializers.IntegerField(help_text="Live orders: accepted, open or partially filled.")


class SupervisionActionOut(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField()
    reason = serializers.CharField()
    by = serializers.CharField(source="actor.email")
    at = serializers.DateTimeField(source="created_at")
    details = serializers.JSONField()


class SupervisedInstrumentDetailOut(SupervisedInstrumentOut):
    actions = SupervisionActionOut(many=True, help_text="The regulator's actions that changed it, newest first.")


class InstrumentStateOut(serializers.Serializer):
    code = serializers.CharField()
    state = serializers.CharField()
    band_bps = serializers.IntegerField()
    auction_ends_at = serializers.CharField(allow_null=True)


class ActionScopeOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=service.SCOPES)
    code = serializers.CharField(allow_null=True)


class InstrumentActionOut(serializers.Serializer):
    action_id = serializers.IntegerField()
    action = serializers.ChoiceField(choices=["halt", "resume", "open", "band"])
    scope = ActionScopeOut()
    reason = serializers.CharField()
    at = serializers.DateTimeField()
    orders = serializers.CharField(allow_null=True, help_text="Halts: whether open orders were kept or cancelled.")
    orders_cancelled = serializers.IntegerField(help_text="Orders the engine was asked to cancel.")
    instruments = InstrumentStateOut(many=True, help_text="The instruments the action changed, as it left them.")


# --- reading -----------------------------------------------------------------------------------


class CodePagination(CursorPagination):
    ordering = "code"
    page_size = 100


class InstrumentPagination(CursorPagination):
    ordering = ("delivery_start", "id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class ClassListApi(APIView):
    permission_classes = [ConsolePermission]
    pagination_class = CodePagination

    @extend_schema(tags=TAG, responses=SupervisedClassOut(many=True), summary="Compute classes, with their instruments trading and halted")
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(service.class_list(), request, view=self)
        return paginator.get_paginated_response(SupervisedClassOut(page, many=True).data)


class HubListApi(APIView):
    permission_classes = [ConsolePermission]
    pagination_class = CodePagination

    @extend_schema(tags=TAG, responses=SupervisedHubOut(many=True), summary="Hubs, with their instruments trading and halted")
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(service.hub_list(), request, view=self)
        return paginator.get_paginated_response(SupervisedHubOut(page, many=True).data)


class SupervisedInstrumentFilter(serializers.Serializer):
    compute_class = serializers.CharField(required=False, max_length=12)
    hub = serializers.CharField(required=False, max_length=8)
    state = serializers.ChoiceField(required=False, choices=[s for s in service.STATE_FILTERS if s],
                                    help_text="A state, or `all`; without it, every instrument not closed.")
    day = serializers.DateField(required=False, help_text="Delivery day (China time), YYYY-MM-DD.")

    def validate_day(self, value):
        if not DAY_MIN <= value <= DAY_MAX:
            raise serializers.ValidationError("Use a year from 2000 to 2999.")
        return value


class InstrumentListApi(APIView):
    permission_classes = [ConsolePermission]
    pagination_class = InstrumentPagination

    @extend_schema(tags=TAG, parameters=[SupervisedInstrumentFilter], responses=SupervisedInstrumentOut(many=True),
                   summary="Instruments by delivery, with state, band, prices and open orders")
    def get(self, request):
        values = SupervisedInstrumentFilter(data=request.query_params)
        values.is_valid(raise_exception=True)
        filters = values.validated_data
        queryset = service.instrument_list(class_code=filters.get("compute_class", ""), hub_code=filters.get("hub", ""),
                                           state=filters.get("state", ""), day=filters.get("day"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(SupervisedInstrumentOut(page, many=True).data)


class InstrumentDetailApi(APIView):
    permission_classes = [ConsolePermission]

    @extend_schema(tags=TAG, responses={200: SupervisedInstrumentDetailOut, **errors(404)},
                   summary="One instrument, with the regulator's actions on it")
    def get(self, request, code: str):
        instrument = service.instrument_get(code=code)
        data = SupervisedInstrumentOut(instrument).data
        data["actions"] = SupervisionActionOut(service.instrument_actions(instrument=instrument), many=True).data
        return Response(data)


# --- acting ------------------------------------------------------------------------------------


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=service.REASON_MAX, help_text="Why; recorded with the action.")


class HaltIn(ReasonIn):
    orders = serializers.ChoiceField(choices=service.ORDERS, default="keep",
                                     help_text="keep: open orders rest in the halted book; cancel: the engine cancels "
                                               "them and releases their holds.")


class ResumeIn(ReasonIn):
    auction_seconds = serializers.IntegerField(
        required=False, min_value=service.AUCTION_SECONDS_MIN, max_value=service.AUCTION_SECONDS_MAX,
        help_text="Length of the call auction the instrument resumes through (default: the volatility auction's).")


class BandIn(ReasonIn):
    band_bps = serializers.IntegerField(min_value=service.BAND_BPS_MIN, max_value=service.BAND_BPS_MAX,
                                        help_text="Basis points either side of the reference price.")


class ActionApi(APIView):
    """One regulator action; subclasses name its input and the service call."""

    permission_classes = [ConsolePermission]
    parser_classes = [JsonParser]
    write_scope = "supervise"
    scope_kind = "instrument"

    def act(self, actor, scope, data):  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def _post(self, request, code: str | None = None):
        if not isinstance(request.data, dict):
            raise AppError("invalid", "Send a JSON object.")
        data = _input(self.input_class, request)
        outcome = self.act(request_actor(request), service.Scope(self.scope_kind, code or ""), data)
        return Response(InstrumentActionOut(service.outcome_as_dict(outcome)).data)


def _halt(actor, scope, data):
    return service.instruments_halt(actor=actor, scope=scope, reason=data["reason"], orders=data["orders"])


def _resume(actor, scope, data):
    return service.instruments_resume(actor=actor, scope=scope, reason=data["reason"],
                                      auction_seconds=data.get("auction_seconds"))


HALT_DOC = dict(tags=TAG, request=HaltIn, responses={200: InstrumentActionOut, **errors(400, 401, 403, 404, 409, 429)})
RESUME_DOC = dict(tags=TAG, request=ResumeIn, responses={200: InstrumentActionOut, **errors(400, 401, 403, 404, 409, 429)})


class InstrumentHaltApi(ActionApi):
    input_class = HaltIn
    act = staticmethod(_halt)

    @extend_schema(**HALT_DOC, summary="Halt an instrument: it matches nothing and refuses new orders and amendments")
    @idempotent()
    def post(self, request, code: str):
        return self._post(request, code)


class InstrumentResumeApi(ActionApi):
    input_class = ResumeIn
    act = staticmethod(_resume)

    @extend_schema(**RESUME_DOC, summary="Resume a halted instrument through a call auction")
    @idempotent()
    def post(self, request, code: str):
        return self._post(request, code)


class InstrumentOpenApi(ActionApi):
    input_class = ReasonIn

    @staticmethod
    def act(actor, scope, data):
        return service.instrument_open(actor=actor, code=scope.code, reason=data["reason"])

    @extend_schema(tags=TAG, request=ReasonIn, responses={200: InstrumentActionOut, **errors(400, 401, 403, 404, 409, 429)},
                   summary="Uncross an instrument's opening (or volatility) auction now")
    @idempotent()
    def post(self, request, code: str):
        return self._post(request, code)


class InstrumentBandApi(ActionApi):
    input_class = BandIn

    @staticmethod
    def act(actor, scope, data):
        return service.instrument_band_set(actor=actor, code=scope.code, band_bps=data["band_bps"], reason=data["reason"])

    @extend_schema(tags=TAG, request=BandIn, responses={200: InstrumentActionOut, **errors(400, 401, 403, 404, 409, 429)},
                   summary="Set an instrument's price band")
    @idempotent()
    def post(self, request, code: str):
        return self._post(request, code)


class ClassHaltApi(InstrumentHaltApi):
    scope_kind = "class"

    @extend_schema(**HALT_DOC, summary="Halt every instrument of a compute class")
    @idempotent()
    def post(self, request, code: str):
        return self._post(request, code)


class ClassResumeApi(InstrumentResumeApi):
    scope_kind = "class"

    @extend_schema(**RESUME_DOC, summary="Resume every halted instrument of a compute class")
    @idempotent()
    def post(self, request, code: str):
        return self._post(request, code)


class HubHaltApi(InstrumentHaltApi):
    scope_kind = "hub"

    @extend_schema(**HALT_DOC, summary="Halt every instrument of a hub")
    @idempotent()
    def post(self, request, code: str):
        return self._post(request, code)


class HubResumeApi(InstrumentResumeApi):
    scope_kind = "hub"

    @extend_schema(**RESUME_DOC, summary="Resume every halted instrument of a hub")
    @idempotent()
    def post(self, request, code: str):
        return self._post(request, code)


class MarketHaltApi(InstrumentHaltApi):
    scope_kind = "market"

    @extend_schema(**HALT_DOC, summary="Halt the whole market")
    @idempotent()
    def post(self, request):
        return self._post(request)


class MarketResumeApi(InstrumentResumeApi):
    scope_kind = "market"

    @extend_schema(**RESUME_DOC, summary="Resume every halted instrument of the market")
    @idempotent()
    def post(self, request):
        return self._post(request)
