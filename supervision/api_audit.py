"""``/api/v1/supervision/``: the audit trail (pages and CSV), replay and provenance checks.

Reading only: a regulator's credentials with ``read`` (supervision.access.check_console_reader).
Times are UTC, ISO 8601; a time sent without an offset is taken as UTC.
"""

from __future__ import annotations

from datetime import timezone as dt_timezone

from django.shortcuts import get_object_or_404
from django.utils import translation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ScopedPermission, request_actor
from exchange.api import Money
from exchange.models import Instrument
from marketplace.models import ComputeAsset
from supervision.access import check_console_reader
from supervision.audit import (
    KINDS, MAX_PAGE_SIZE, audit_csv_chunks, audit_filters_parse, audit_page, describe, page_size_parse,
)
from supervision.provenance import provenance_asset_report, provenance_chain_report
from supervision.replay import TRADE_FIELDS, replay_instrument
from supervision.streaming import streamed

TAG = ["Supervision"]
UTC = dt_timezone.utc


class ConsoleReadPermission(ScopedPermission):
    """Members of a regulator organisation in the regulator role, with ``read``."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        check_console_reader(request_actor(request))
        return True


class ConsoleApi(APIView):
    permission_classes = [ConsoleReadPermission]


FILTERS = [
    OpenApiParameter("organisation", OpenApiTypes.INT, description="Records the organisation took part in."),
    OpenApiParameter("instrument", OpenApiTypes.STR, description="Instrument code, e.g. AI80.NX.2026-11-24."),
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="From this time (inclusive; UTC if no offset)."),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="Up to this time (exclusive; UTC if no offset)."),
    OpenApiParameter("kind", OpenApiTypes.STR, many=True, enum=list(KINDS), explode=True,
                     description="Only these kinds (repeat it, or separate them by commas)."),
]


class AuditRowOut(serializers.Serializer):
    at = serializers.DateTimeField(default_timezone=UTC)
    kind = serializers.ChoiceField(choices=KINDS)
    organisation_id = serializers.IntegerField(allow_null=True)
    organisation = serializers.CharField(allow_null=True)
    counterparty_id = serializers.IntegerField(allow_null=True, help_text=(
        "The other party: a trade's seller (the organisation is its buyer), a settlement's holder (the "
        "organisation is its seller), a delivery's holder or provider, the regulator of its action."))
    counterparty = serializers.CharField(allow_null=True)
    instrument = serializers.CharField(allow_null=True)
    user = serializers.CharField(allow_null=True, help_text="Who did it, where it is recorded.")
    summary = serializers.SerializerMethodField()
    details = serializers.DictField(source="detail", help_text=(
        "The record's fields; amounts in CNY as decimal strings. Never delivery credentials or endpoints."))

    def get_summary(self, row) -> str:
        return describe(row)


class AuditPageOut(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text="The next (older) page, or null at the end.")
    previous = serializers.CharField(allow_null=True, help_text="The page before (newer), or null on the first.")
    results = AuditRowOut(many=True)


AUDIT_EXAMPLE = {"next": None, "previous": None, "results": [{
    "at": "2026-12-07T02:15:04.120331Z", "kind": "trade", "organisation_id": 12, "organisation": "Beijing AI Lab",
    "counterparty_id": 7, "counterparty": "Gui'an Cloud Valley Data Centre", "instrument": "AI80.NX.2026-12-09",
    "user": None, "summary": "40 SCU·h at 19.80 (aggressor: buy; orders 5510 and 5498)",
    "details": {"trade": 2210, "seq": 9931, "match_index": 0, "price": "19.80", "qty": 40, "buy_order": 5510,
                "sell_order": 5498, "aggressor": "buy", "buyer_fee": "0.40", "seller_fee": "0.16"}}]}


class AuditApi(ConsoleApi):
    @extend_schema(
        tags=TAG, summary="The audit trail, newest first, in pages",
        description="Every order, amendment, cancel, call auction, trade, regulator action (halts, KYC), delivery, "
                    "metering report, dispute, settlement and payout. Follow `next` for older records, `previous` "
                    "back towards the newest.",
        parameters=[*FILTERS, OpenApiParameter("cursor", OpenApiTypes.STR, description="From a page's `next`."),
                    OpenApiParameter("page_size", OpenApiTypes.INT,
                                     description=f"1 to {MAX_PAGE_SIZE}; 50 if not given.")],
        responses=AuditPageOut, examples=[OpenApiExample("A trade", value=AUDIT_EXAMPLE, response_only=True)],
    )
    def get(self, request):
        filters = audit_filters_parse(request.query_params)
        page = audit_page(filters=filters, cursor=request.query_params.get("cursor"),
                          limit=page_size_parse(request.query_params.get("page_size")))
        base = request.build_absolute_uri(request.path)

        def link(cursor: str | None) -> str:
            query = request.query_params.copy()
            query.pop("cursor", None)
            if cursor:
                query["cursor"] = cursor
            return f"{base}?{query.urlencode()}" if query else base

        next_url = link(page.next_cursor) if page.next_cursor else None
        previous_url = link(page.previous_cursor) if page.has_previous else None
        return Response(AuditPageOut({"next": next_url, "previous": previous_url, "results": page.rows}).data)


class AnswerAsDocumented(BaseContentNegotiation):
    """The export answers CSV, and its errors JSON, whatever the client's Accept header says."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class AuditCsvApi(ConsoleApi):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AnswerAsDocumented

    @extend_schema(
        tags=TAG, summary="The audit trail as CSV, streamed (every record the filters select, newest first)",
        parameters=FILTERS,
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=(
            "time_utc, time_china, kind, organisation_id, organisation, counterparty_id, counterparty, instrument, "
            "user, summary, details (JSON)."))},
    )
    def get(self, request):
        filters = audit_filters_parse(request.query_params)
        response = streamed(request, audit_csv_chunks(filters=filters, language=translation.get_language()),
                            content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
        return response


# --------------------------------------------------------------------------- replay


class ReplayFillOut(serializers.Serializer):
    seq = serializers.IntegerField(help_text="The inbox command that made it.")
    match_index = serializers.IntegerField()
    price = Money(source="price_fen")
    qty = serializers.IntegerField()
    buy_order = serializers.IntegerField()
    sell_order = serializers.IntegerField()
    aggressor = serializers.CharField()


class DifferenceOut(serializers.Serializer):
    seq = serializers.IntegerField(help_text="The inbox command where replay and store first disagree.")
    fields = serializers.ListField(child=serializers.ChoiceField(choices=TRADE_FIELDS))
    expected = ReplayFillOut(allow_null=True, help_text="The stored fill; null if the replay made one the store lacks.")
    got = ReplayFillOut(allow_null=True, help_text="The replayed fill; null if the replay did not make the stored one.")


class ReplayOut(serializers.Serializer):
    instrument = serializers.CharField()
    exact = serializers.BooleanField(help_text="The fills reproduce exactly.")
    started_as = serializers.CharField(help_text="pre_open (an opening auction) or continuous.")
    commands = serializers.IntegerField(help_text="Commands replayed (up to the first difference).")
    trades = serializers.IntegerField(help_text="Fills that agreed.")
    first_difference = DifferenceOut(allow_null=True)
    error = serializers.CharField(help_text="Why the replay could not go on; empty if it could.")


def replay_data(report) -> dict:
    difference = report.first_difference
    return {"instrument": report.instrument, "exact": report.exact, "started_as": report.started_as,
            "commands": report.commands, "trades": report.trades, "error": report.error,
            "first_difference": None if difference is None else {
                "seq": difference.seq, "fields": difference.fields, "expected": difference.expected,
                "got": difference.got}}


class ReplayApi(ConsoleApi):
    @extend_schema(tags=TAG, summary="Rerun an instrument's stored commands through a fresh book; compare the fills",
                   responses=ReplayOut)
    def get(self, request, code: str):
        instrument = get_object_or_404(Instrument, code=code)
        return Response(ReplayOut(replay_data(replay_instrument(instrument=instrument))).data)


# --------------------------------------------------------------------------- provenance


class BrokenLinkOut(serializers.Serializer):
    seq = serializers.IntegerField()
    event_id = serializers.IntegerField()
    kind = serializers.CharField()
    asset = serializers.IntegerField(source="asset_id", allow_null=True)
    recorded_at = serializers.DateTimeField(default_timezone=UTC)
    reason = serializers.ChoiceField(choices=["hash_mismatch", "prev_hash_mismatch", "sequence_gap"])
    problem = serializers.CharField(help_text="What is wrong, in words.")


class ProvenanceOut(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["chain", "asset"])
    asset = serializers.IntegerField(source="asset_id", allow_null=True)
    ok = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Events checked, up to the first broken one.")
    head_seq = serializers.IntegerField(allow_null=True, help_text="The last event checked.")
    first_broken = BrokenLinkOut(allow_null=True)


class ProvenanceChainApi(ConsoleApi):
    @extend_schema(tags=TAG, summary="Verify the whole provenance chain; the first broken link",
                   responses=ProvenanceOut)
    def get(self, request):
        return Response(ProvenanceOut(provenance_chain_report()).data)


class ProvenanceAssetApi(ConsoleApi):
    @extend_schema(tags=TAG, summary="Verify one asset's provenance events; the first broken link",
                   responses=ProvenanceOut)
    def get(self, request, asset_id: int):
        asset = get_object_or_404(ComputeAsset, pk=asset_id)
        return Response(ProvenanceOut(provenance_asset_report(asset=asset)).data)
