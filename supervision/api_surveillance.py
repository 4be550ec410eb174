"""``/api/v1/supervision/`` for surveillance: alerts (list, one, take under review, close)
and the rules (list, one, switch and tune). Regulators only: reading needs the console's
read access, every change the ``supervise`` scope."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import check_supervisor
from accounts.authentication import ScopedPermission, request_actor
from exchange.errors import NotFound
from exchange.idempotency import idempotent
from exchange.wire import JsonParser
from marketplace.api.common import errors
from supervision.access import check_console_reader
from supervision.models import Alert
from supervision.surveillance import selectors, services
from supervision.surveillance.params import SPECS

TAG = ["Supervision: surveillance"]


def input_of(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


class AlertOrganisationOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class AlertOut(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField(source="rule.code")
    rule_title = serializers.SerializerMethodField()
    severity = serializers.ChoiceField(choices=Alert.Severity.values)
    state = serializers.ChoiceField(choices=Alert.State.values)
    summary = serializers.SerializerMethodField()
    note = serializers.CharField()
    instrument = serializers.CharField(source="instrument.code", allow_null=True, default=None)
    organisations = serializers.SerializerMethodField()
    evidence = serializers.JSONField(help_text="orders and trades (ids), figures (what crossed the thresholds), "
                                               "findings (how many joined the alert), first_at and last_at.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_rule_title(self, alert) -> str:
        return selectors.rule_title(alert.rule.code)

    def get_summary(self, alert) -> str:
        return selectors.alert_summary(alert)

    @extend_schema_field(AlertOrganisationOut(many=True))
    def get_organisations(self, alert):
        names = self.context.get("names") or selectors.organisation_names([alert])
        return [{"id": org, "name": names.get(org, "")} for org in alert.organisation_ids]


class AlertPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


def _reader(request):
    actor = request_actor(request)
    check_console_reader(actor)
    return actor


def _alert(alert_id: int) -> Alert:
    alert = selectors.alert_get(alert_id=alert_id)
    if alert is None:
        raise NotFound("No such alert.")
    return alert


class AlertListApi(APIView):
    permission_classes = [ScopedPermission]
    pagination_class = AlertPagination

    class Filter(serializers.Serializer):
        state = serializers.ChoiceField(required=False, choices=Alert.State.values)
        rule = serializers.ChoiceField(required=False, choices=list(SPECS))
        severity = serializers.ChoiceField(required=False, choices=Alert.Severity.values)
        organisation = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
        instrument = serializers.CharField(required=False, max_length=40)

    @extend_schema(tags=TAG, parameters=[Filter], responses={200: AlertOut(many=True), **errors(400, 401, 403, 429)},
                   summary="Regulator: surveillance alerts, newest first")
    def get(self, request):
        _reader(request)
        values = self.Filter(data=request.query_params)
        values.is_valid(raise_exception=True)
        v = values.validated_data
        queryset = selectors.alert_list(state=v.get("state"), rule=v.get("rule"), severity=v.get("severity"),
                                        organisation_id=v.get("organisation"), instrument=v.get("instrument"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        out = AlertOut(page, many=True, context={"names": selectors.organisation_names(page)})
        return paginator.get_paginated_response(out.data)


class AlertDetailApi(APIView):
    permission_classes = [ScopedPermission]

    @extend_schema(tags=TAG, responses={200: AlertOut, **errors(401, 403, 404, 429)},
                   summary="Regulator: one alert with its evidence")
    def get(self, request, alert_id: int):
        _reader(request)
        return Response(AlertOut(_alert(alert_id)).data)


class NoteIn(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=services.NOTE_MAX)


class CloseIn(serializers.Serializer):
    note = serializers.CharField(max_length=services.NOTE_MAX, help_text="What was found and done.")


class AlertReviewApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser]
    write_scope = "supervise"

    @extend_schema(tags=TAG, request=NoteIn, responses={200: AlertOut, **errors(400, 401, 403, 404, 409, 429)},
                   summary="Regulator: take an open alert under review")
    @idempotent()
    def post(self, request, alert_id: int):
        actor = request_actor(request)
        check_supervisor(actor)
        alert = services.alert_review(actor=actor, alert_id=alert_id, note=input_of(NoteIn, request).get("note"))
        return Response(AlertOut(alert).data)


class AlertCloseApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser]
    write_scope = "supervise"

    @extend_schema(tags=TAG, request=CloseIn, responses={200: AlertOut, **errors(400, 401, 403, 404, 409, 429)},
                   summary="Regulator: close an alert with a note")
    @idempotent()
    def post(self, request, alert_id: int):
        actor = request_actor(request)
        check_supervisor(actor)
        alert = services.alert_close(actor=actor, alert_id=alert_id, note=input_of(CloseIn, request)["note"])
        return Response(AlertOut(alert).data)


class ParameterOut(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.IntegerField()
    default = serializers.IntegerField()
    min = serializers.IntegerField()
    max = serializers.IntegerField()
    help = serializers.CharField()


class RuleOut(serializers.Serializer):
    code = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    severity = serializers.ChoiceField(choices=Alert.Severity.values)
    enabled = serializers.BooleanField()
    parameters = ParameterOut(many=True)
    updated_at = serializers.DateTimeField()


def _rule_row(code: str) -> dict:
    if code not in SPECS:
        raise NotFound("No such surveillance rule.")
    return next(row for row in selectors.rule_rows() if row["code"] == code)


class RuleListApi(APIView):
    permission_classes = [ScopedPermission]

    @extend_schema(tags=TAG, responses={200: RuleOut(many=True), **errors(401, 403, 429)},
                   summary="Regulator: the surveillance rules and their parameters")
    def get(self, request):
        _reader(request)
        return Response(RuleOut(selectors.rule_rows(), many=True).data)


class RuleIn(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    parameters = serializers.DictField(child=serializers.IntegerField(min_value=0, max_value=10**12), required=False,
                                       help_text="Parameter name → whole number (see the rule's bounds).")
    reason = serializers.CharField(max_length=1000, help_text="Why the rule changes.")


class RuleDetailApi(APIView):
    permission_classes = [ScopedPermission]
    parser_classes = [JsonParser]
    write_scope = "supervise"

    @extend_schema(tags=TAG, responses={200: RuleOut, **errors(401, 403, 404, 429)},
                   summary="Regulator: one surveillance rule")
    def get(self, request, code: str):
        _reader(request)
        return Response(RuleOut(_rule_row(code)).data)

    @extend_schema(tags=TAG, request=RuleIn, responses={200: RuleOut, **errors(400, 401, 403, 404, 429)},
                   summary="Regulator: switch a rule on or off and set its parameters")
    @idempotent()
    def patch(self, request, code: str):
        actor = request_actor(request)
        check_supervisor(actor)
        _rule_row(code)
        values = input_of(RuleIn, request)
        services.rule_update(actor=actor, code=code, reason=values["reason"], enabled=values.get("enabled"),
                             parameters=values.get("parameters"))
        return Response(RuleOut(_rule_row(code)).data)


urlpatterns = [
    path("alerts/", AlertListApi.as_view(), name="supervision-alerts"),
    path("alerts/<int:alert_id>/", AlertDetailApi.as_view(), name="supervision-alert"),
    path("alerts/<int:alert_id>/review/", AlertReviewApi.as_view(), name="supervision-alert-review"),
    path("alerts/<int:alert_id>/close/", AlertCloseApi.as_view(), name="supervision-alert-close"),
    path("rules/", RuleListApi.as_view(), name="supervision-rules"),
    path("rules/<slug:code>/", RuleDetailApi.as_view(), name="supervision-rule"),
]
