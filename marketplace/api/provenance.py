"""The provenance log: any asset's timeline, and a recomputation of the whole chain."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.errors import NotFound
from marketplace.api.common import THROTTLES, Pagination, PublicReadPermission, errors
from marketplace.models import ComputeAsset
from marketplace.selectors import asset_provenance_events, provenance_check, provenance_verify

TAG = ["Provenance"]


class EventOut(serializers.Serializer):
    seq = serializers.IntegerField(source="event.seq")
    kind = serializers.CharField(source="event.kind")
    asset = serializers.IntegerField(source="event.asset_id", allow_null=True)
    device_type = serializers.IntegerField(source="event.device_type_id", allow_null=True)
    payload = serializers.JSONField(source="event.payload")
    recorded_at = serializers.DateTimeField(source="event.recorded_at")
    prev_hash = serializers.CharField(source="event.prev_hash")
    hash = serializers.CharField(source="event.hash")
    problem = serializers.CharField(allow_null=True, help_text=(
        "null when the event matches its hash and links to its predecessor; else sequence_gap, "
        "prev_hash_mismatch or hash_mismatch."))


class BrokenOut(serializers.Serializer):
    seq = serializers.IntegerField()
    event_id = serializers.IntegerField()
    reason = serializers.CharField()


class ChainOut(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Events recomputed, up to the first broken one.")
    head_seq = serializers.IntegerField()
    head_hash = serializers.CharField()
    first_broken = BrokenOut(allow_null=True)


EVENT_EXAMPLE = {
    "seq": 7, "kind": "listing_created", "asset": 1, "device_type": None,
    "payload": {"listing": 12, "compute_class": "AI80", "device_count": 128, "scu_h_per_period": 2457, "factor": "0.8000"},
    "recorded_at": "2026-11-25T08:00:00Z",
    "prev_hash": "5b2d…", "hash": "a91f…", "problem": None,
}


class AssetProvenanceApi(APIView):
    """Public: a buyer follows any trade back to its asset, owners and attestations."""

    permission_classes = [PublicReadPermission]
    pagination_class = Pagination
    throttle_classes = THROTTLES
    ordering = ("seq",)

    @extend_schema(tags=TAG, summary="The provenance timeline of any asset, each event checked",
                   responses={200: EventOut(many=True), **errors(404, 429)},
                   examples=[OpenApiExample("Listing created", value=EVENT_EXAMPLE, response_only=True)])
    def get(self, request, pk: int):
        asset = ComputeAsset.objects.filter(pk=pk).first()
        if asset is None:
            raise NotFound("No asset with that id.")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(asset_provenance_events(asset=asset), request, view=self)
        return paginator.get_paginated_response(EventOut(provenance_check(page), many=True).data)


class ProvenanceVerifyApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES

    @extend_schema(
        tags=TAG, summary="Recompute the whole provenance chain and report the first broken link",
        responses={200: ChainOut, **errors(429)},
        examples=[
            OpenApiExample("Intact", response_only=True, value={
                "ok": True, "checked": 42, "head_seq": 42, "head_hash": "a91f…", "first_broken": None}),
            OpenApiExample("Tampered", response_only=True, value={
                "ok": False, "checked": 7, "head_seq": 7, "head_hash": "a91f…",
                "first_broken": {"seq": 7, "event_id": 7, "reason": "hash_mismatch"}}),
        ],
    )
    def get(self, request):
        report = provenance_verify()
        return Response(ChainOut({
            "ok": report.ok, "checked": report.checked, "head_seq": report.head_seq, "head_hash": report.head_hash,
            "first_broken": report.first_broken.as_dict() if report.first_broken else None,
        }).data)
