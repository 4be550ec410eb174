"""``/api/v1/supervision/``: participants (the KYC queue, owner groups, fee tiers, attestors).

Reads need a regulator's member with ``read`` (supervision.access.check_console_reader);
every action needs ``supervise`` (accounts.access.check_supervisor), asked before the body
is read, so a caller who may not act learns nothing from its body's errors.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import check_supervisor
from accounts.authentication import request_actor
from accounts.models import Organisation
from exchange.idempotency import idempotent
from exchange.wire import JsonParser
from marketplace.api.common import errors
from settlement.api.common import input_of
from supervision.access import check_console_reader
from supervision.participants import selectors, services

TAG = ["Supervision"]


class ConsolePermission(permissions.BasePermission):
    """Reads: a regulator's member with ``read``; writes: with ``supervise``."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        actor = request_actor(request)
        if request.method in permissions.SAFE_METHODS:
            check_console_reader(actor)
        else:
            check_supervisor(actor)
        return True


class ConsolePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def query_of(serializer_class, request) -> dict:
    values = serializer_class(data=request.query_params)
    values.is_valid(raise_exception=True)
    return values.validated_data


def paged(view, request, queryset, serializer_class):
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


# --- output ----------------------------------------------------------------------------------

class MemberOut(serializers.Serializer):
    email = serializers.EmailField(source="user.email")
    role = serializers.CharField()
    active = serializers.BooleanField(source="user.is_active")
    joined_at = serializers.DateTimeField(source="created_at")


class NamedOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ParticipantOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=services.PARTICIPANT_KINDS)
    kyc_status = serializers.ChoiceField(choices=Organisation.Kyc.values)
    city = serializers.CharField()
    registered_at = serializers.DateTimeField(source="created_at")
    beneficial_owner = NamedOut()
    fee_tier = serializers.SerializerMethodField(help_text="The tier's code; null: the default tier.")
    members = MemberOut(source="memberships.all", many=True)

    def get_fee_tier(self, organisation) -> str | None:
        member_tier = getattr(organisation, "fee_tier", None)
        return member_tier.tier.code if member_tier is not None else None


class ConsoleAttestorKeyOut(serializers.Serializer):
    key_id = serializers.CharField()
    public_key = serializers.CharField()
    created_at = serializers.DateTimeField()
    attestations = serializers.IntegerField(source="attestation_count")


class ActionOut(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField(help_text="kyc.approve, kyc.reject, kyc.suspend, kyc.reinstate, owner.assign, "
                                             "tier.assign, tier.remove, dispute.resolve, …")
    reason = serializers.CharField()
    details = serializers.DictField()
    by = serializers.EmailField(source="actor.email")
    regulator = serializers.CharField(source="regulator.name")
    at = serializers.DateTimeField(source="created_at")


class ParticipantDetailOut(ParticipantOut):
    owner_group = NamedOut(source="beneficial_owner.organisations.all", many=True,
                           help_text="Every organisation in the same beneficial-owner group, this one included.")
    attestor_keys = ConsoleAttestorKeyOut(source="attestor_keys.all", many=True)
    history = ActionOut(many=True, help_text="The regulator's recorded decisions, newest first (the last 50).")


def participant_out(organisation_id) -> dict:
    organisation = selectors.participant(organisation_id)
    organisation.history = selectors.participant_history(organisation)
    return ParticipantDetailOut(organisation).data


# --- participants ----------------------------------------------------------------------------

class ParticipantListApi(APIView):
    permission_classes = [ConsolePermission]
    pagination_class = ConsolePagination

    class Filter(serializers.Serializer):
        status = serializers.ChoiceField(required=False, choices=Organisation.Kyc.values)
        kind = serializers.ChoiceField(required=False, choices=services.PARTICIPANT_KINDS)
        q = serializers.CharField(required=False, max_length=100, help_text="Part of a name, city, owner or e-mail.")

    @extend_schema(tags=TAG, parameters=[Filter], responses=ParticipantOut(many=True),
                   summary="Regulator: participants, pending KYC first (oldest application first)")
    def get(self, request):
        values = query_of(self.Filter, request)
        queryset = selectors.participants(status=values.get("status"), kind=values.get("kind"),
                                          search=values.get("q"))
        return paged(self, request, queryset, ParticipantOut)


class ParticipantDetailApi(APIView):
    permission_classes = [ConsolePermission]

    @extend_schema(tags=TAG, responses={200: ParticipantDetailOut, **errors(404)},
                   summary="Regulator: one participant with its members, group, keys and decisions")
    def get(self, request, organisation_id: int):
        return Response(participant_out(organisation_id))


class KycApi(APIView):
    permission_classes = [ConsolePermission]
    parser_classes = [JsonParser]

    class KycIn(serializers.Serializer):
        action = serializers.ChoiceField(choices=list(services.KYC_ACTIONS),
                                         help_text="approve: pending or rejected → verified; reject: pending → "
                                                   "rejected; suspend: any → suspended; reinstate: suspended → "
                                                   "verified.")
        reason = serializers.CharField(required=False, allow_blank=True, max_length=services.REASON_MAX,
                                       help_text="Required except to approve; recorded and sent to the organisation.")
        cancel_orders = serializers.BooleanField(default=True, help_text="To suspend: also cancel the "
                                                 "organisation's live orders (default), or leave them resting.")

    @extend_schema(tags=TAG, request=KycIn, responses={200: ParticipantDetailOut, **errors(400, 401, 403, 404, 409, 422)},
                   summary="Regulator: approve, reject, suspend or reinstate a participant's KYC",
                   examples=[OpenApiExample("suspend", request_only=True, value={
                       "action": "suspend", "reason": "Trading under investigation for wash trades."})])
    @idempotent()
    def post(self, request, organisation_id: int):
        values = input_of(self.KycIn, request)
        services.kyc_decide(actor=request_actor(request), organisation_id=organisation_id, **values)
        return Response(participant_out(organisation_id))


class OwnerAssignApi(APIView):
    permission_classes = [ConsolePermission]
    parser_classes = [JsonParser]

    class OwnerAssignIn(serializers.Serializer):
        owner_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        reason = serializers.CharField(max_length=services.REASON_MAX)

    @extend_schema(tags=TAG, request=OwnerAssignIn, responses={200: ParticipantDetailOut, **errors(400, 401, 403, 404, 409, 422)},
                   summary="Regulator: move a participant into a beneficial-owner group")
    @idempotent()
    def post(self, request, organisation_id: int):
        values = input_of(self.OwnerAssignIn, request)
        services.owner_assign(actor=request_actor(request), organisation_id=organisation_id, **values)
        return Response(participant_out(organisation_id))


class TierAssignApi(APIView):
    permission_classes = [ConsolePermission]
    parser_classes = [JsonParser]

    class TierIn(serializers.Serializer):
        tier = serializers.CharField(allow_null=True, allow_blank=True, max_length=50,
                                     help_text="A fee tier's code; null or empty: back to the default tier.")
        reason = serializers.CharField(max_length=services.REASON_MAX)

    @extend_schema(tags=TAG, request=TierIn, responses={200: ParticipantDetailOut, **errors(400, 401, 403, 404, 409, 422)},
                   summary="Regulator: put a participant on a fee tier, or back on the default")
    @idempotent()
    def post(self, request, organisation_id: int):
        values = input_of(self.TierIn, request)
        services.tier_assign(actor=request_actor(request), organisation_id=organisation_id, tier_code=values["tier"],
                             reason=values["reason"])
        return Response(participant_out(organisation_id))


# --- groups, tiers, attestors ----------------------------------------------------------------

class ConsoleOwnerOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    organisations = NamedOut(source="organisations.all", many=True)


class OwnerListApi(APIView):
    permission_classes = [ConsolePermission]
    parser_classes = [JsonParser]
    pagination_class = ConsolePagination

    class OwnerCreateIn(serializers.Serializer):
        name = serializers.CharField(max_length=services.OWNER_NAME_MAX)
        reason = serializers.CharField(required=False, allow_blank=True, max_length=services.REASON_MAX)

    @extend_schema(tags=TAG, responses=ConsoleOwnerOut(many=True),
                   summary="Regulator: beneficial-owner groups, those of several organisations first")
    def get(self, request):
        return paged(self, request, selectors.owner_groups(), ConsoleOwnerOut)

    @extend_schema(tags=TAG, request=OwnerCreateIn, responses={201: ConsoleOwnerOut, **errors(400, 401, 403, 409)},
                   summary="Regulator: create a beneficial-owner group (then move organisations into it)")
    @idempotent()
    def post(self, request):
        owner = services.owner_create(actor=request_actor(request), **input_of(self.OwnerCreateIn, request))
        return Response(ConsoleOwnerOut(selectors.owner_groups().get(pk=owner.pk)).data, status=status.HTTP_201_CREATED)


class TierMemberOut(serializers.Serializer):
    id = serializers.IntegerField(source="organisation.id")
    name = serializers.CharField(source="organisation.name")


class FeeTierOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    maker_bps = serializers.IntegerField()
    taker_bps = serializers.IntegerField()
    is_default = serializers.BooleanField(help_text="Participants without a tier of their own pay this one.")
    members = TierMemberOut(many=True, help_text="Participants put on this tier.")


class FeeTierListApi(APIView):
    permission_classes = [ConsolePermission]

    @extend_schema(tags=TAG, responses=FeeTierOut(many=True), summary="Regulator: fee tiers and who is on each")
    def get(self, request):
        return Response(FeeTierOut(selectors.fee_tiers(), many=True).data)


class AttestorOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kyc_status = serializers.ChoiceField(choices=Organisation.Kyc.values,
                                         help_text="An attestor posts attestations only while verified.")
    city = serializers.CharField()
    registered_at = serializers.DateTimeField(source="created_at")
    keys = ConsoleAttestorKeyOut(source="attestor_keys.all", many=True)
    members = MemberOut(source="memberships.all", many=True)


class AttestorListApi(APIView):
    permission_classes = [ConsolePermission]
    pagination_class = ConsolePagination

    @extend_schema(tags=TAG, responses=AttestorOut(many=True),
                   summary="Regulator: attestors and their keys (verify or suspend them through the KYC action)")
    def get(self, request):
        return paged(self, request, selectors.attestors(), AttestorOut)
