"""DRF authentication and permissions built on accounts.access."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from accounts.access import Actor, actor_from_token, actor_from_user, check_actor
from exchange.errors import AppError


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token cx_…``; request.auth becomes the :class:`Actor`."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the header as 'Authorization: Token <token>'.")
        try:
            actor = actor_from_token(header[1])
        except AppError as exc:
            raise exceptions.AuthenticationFailed(exc.detail, code=exc.code) from exc
        return actor.user, actor

    def authenticate_header(self, request):
        return self.keyword


def request_actor(request) -> Actor:
    """The acting :class:`Actor` of a DRF request (token or browser session)."""
    if isinstance(request.auth, Actor):
        return request.auth
    cached = getattr(request, "_actor", None)
    if cached is None:
        cached = request._actor = actor_from_user(request.user)
    return cached


class ScopedPermission(permissions.BasePermission):
    """Safe methods need ``read``; others need the view's ``write_scope`` (default ``trade``)."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        acting = request.method not in permissions.SAFE_METHODS
        scope = getattr(view, "write_scope", "trade") if acting else "read"
        check_actor(request_actor(request), scope=scope, acting=acting)
        return True


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = TokenAuthentication
    name = "TokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token cx_…` — create tokens at /accounts/tokens/ or POST /api/v1/tokens/.",
        }
