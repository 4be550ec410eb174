"""API: who am I, and API token management."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import check_token_create, check_token_revoke
from accounts.authentication import ScopedPermission, request_actor
from accounts.models import ApiToken, Organisation
from accounts.selectors import token_list
from accounts.services import token_create, token_revoke
from exchange.errors import NotFound
from exchange.idempotency import idempotent


class OrganisationOut(serializers.ModelSerializer):
    class Meta:
        model = Organisation
        fields = ["id", "name", "kind", "kyc_status", "city", "beneficial_owner_id"]


class MeApi(APIView):
    permission_classes = [ScopedPermission]

    class OutputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.CharField()
        scopes = serializers.ListField(child=serializers.CharField())
        organisation = OrganisationOut()

    @extend_schema(responses=OutputSerializer, summary="The caller's identity, organisation and scopes")
    def get(self, request):
        actor = request_actor(request)
        return Response(
            self.OutputSerializer(
                {"email": actor.user.email, "role": actor.membership.role, "scopes": sorted(actor.scopes),
                 "organisation": actor.organisation}
            ).data
        )


class TokenOut(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at"]


class TokenListApi(APIView):
    """Tokens are managed from a signed-in session or with another token of the same person;
    a token creates and revokes only tokens within its own scopes."""

    permission_classes = [ScopedPermission]
    write_scope = "read"

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiToken.Scope.choices), min_length=1)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    class CreatedSerializer(TokenOut):
        token = serializers.CharField(help_text="The secret. Shown only in this response; store it now.")

        class Meta(TokenOut.Meta):
            fields = TokenOut.Meta.fields + ["token"]

    @extend_schema(responses=TokenOut(many=True), summary="List your API tokens")
    def get(self, request):
        tokens = token_list(user=request.user)
        return Response(TokenOut(tokens, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: CreatedSerializer},
        summary="Create an API token (the secret is returned once)",
        description="With an `Idempotency-Key`, a repeat returns the same token without its secret.",
        examples=[OpenApiExample("trading bot", value={"name": "bot", "scopes": ["read", "trade"]}, request_only=True)],
    )
    @idempotent(redact=("token",))
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = request_actor(request)
        check_token_create(actor, scopes=data.validated_data["scopes"])
        with transaction.atomic():
            token, secret = token_create(membership=actor.membership, **data.validated_data)
        out = TokenOut(token).data
        out["token"] = secret
        return Response(out, status=status.HTTP_201_CREATED)


class TokenDetailApi(APIView):
    permission_classes = [ScopedPermission]
    write_scope = "read"

    @extend_schema(request=None, responses={200: TokenOut},
                   summary="Revoke an API token (200 with the revoked token; repeating it changes nothing)")
    def delete(self, request, token_id: int):
        token = token_list(user=request.user).filter(pk=token_id).first()
        if token is None:
            raise NotFound("No token with that id belongs to you.")
        check_token_revoke(request_actor(request), token=token)
        token_revoke(token=token, user=request.user)
        return Response(TokenOut(token).data)
