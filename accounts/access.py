"""Who is acting, for which organisation, with which scopes — checked in one place.

Every edge (DRF views, the order-entry handler, WebSocket consumers, pages) asks
:func:`actor_from_token` or :func:`actor_from_user` and then :func:`check_actor`; an edge
that keeps an actor beyond one request (an open WebSocket) passes it through
:func:`actor_refresh` before each command. Nothing else decides access.

A token's effective scopes are its own scopes within what its holder's role allows now,
so a role change reaches tokens made before it. Order entry (``cx_place_orders``) applies
the same rule to the rows it reads for every batch, with the role's scopes from
:func:`role_scopes_sql`.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import ApiToken, Membership, Organisation, User
from accounts.selectors import membership_current
from accounts.services import ROLE_SCOPES, token_check_active, token_verify
from exchange.errors import AppError, Forbidden


@dataclass(frozen=True)
class Actor:
    user: User
    membership: Membership
    scopes: frozenset[str]
    token: ApiToken | None = None

    @property
    def organisation(self) -> Organisation:
        return self.membership.organisation

    @property
    def is_regulator(self) -> bool:
        return self.membership.role == Membership.Role.REGULATOR


def _token_scopes(token: ApiToken) -> frozenset[str]:
    return frozenset(token.scopes) & frozenset(ROLE_SCOPES.get(token.membership.role, ()))


def actor_from_token(raw: str) -> Actor:
    token = token_verify(raw)
    return Actor(user=token.membership.user, membership=token.membership, scopes=_token_scopes(token), token=token)


def actor_from_user(user: User) -> Actor:
    membership = membership_current(user=user)
    if membership is None:
        raise Forbidden("Your account does not belong to any organisation.", code="no_organisation")
    return Actor(user=user, membership=membership, scopes=frozenset(ROLE_SCOPES[membership.role]))


def check_actor(actor: Actor, *, scope: str, acting: bool) -> None:
    """Refuse unless ``actor`` holds ``scope`` and, when ``acting`` (changing anything), may act.

    A suspended organisation can do nothing; one whose KYC is pending can read and manage
    its own set-up, but not trade.
    """
    organisation = actor.organisation
    if organisation.is_suspended:
        raise Forbidden(
            f"{organisation.name} is suspended by the regulator; contact the exchange operator.",
            code="organisation_suspended",
        )
    if scope not in actor.scopes:
        raise Forbidden(
            f"This needs the {scope!r} scope; the credentials used have {', '.join(sorted(actor.scopes)) or 'none'}.",
            code="scope_missing",
        )
    if acting and scope == "trade" and not organisation.is_verified:
        # One code for every unverified status, as order entry's statement answers.
        waiting = ("'s KYC application was rejected" if organisation.kyc_status == Organisation.Kyc.REJECTED
                   else " is awaiting KYC verification")
        raise Forbidden(
            f"{organisation.name}{waiting}; trading opens once the regulator verifies it.",
            code="kyc_pending",
        )


def _membership_changed() -> AppError:
    return Forbidden(
        "Your membership changed since these credentials were checked (moved, removed or replaced); "
        "reconnect or sign in again.",
        code="membership_changed",
    )


def actor_refresh(actor: Actor) -> Actor:
    """``actor`` as the database has it now, for an edge that keeps an actor between actions.

    One query re-reads the token (revoked, expired, gone), the user (deactivated), the
    membership (removed, moved to another organisation, role changed) and the
    organisation (suspended, KYC). Raises AppError when the credentials no longer hold
    (401) or no longer act for the same organisation (403 ``membership_changed``);
    otherwise returns a fresh Actor whose scopes follow the current role, for
    :func:`check_actor`.
    """
    if actor.token is not None:
        token = (
            ApiToken.objects.select_related("membership__organisation", "membership__user")
            .filter(pk=actor.token.pk)
            .first()
        )
        if token is None:
            # A removed membership takes its tokens with it.
            raise AppError("token_revoked", "The API token was revoked or no longer exists.", status_code=401)
        token_check_active(token)
        membership, scopes = token.membership, _token_scopes(token)
    else:
        membership = (
            Membership.objects.select_related("organisation", "user")
            .filter(user_id=actor.user.pk)
            .order_by("created_at", "id")
            .first()
        )
        if membership is None:
            raise _membership_changed()
        if not membership.user.is_active:
            raise AppError("user_inactive", "Your account is deactivated.", status_code=401)
        token, scopes = None, frozenset(ROLE_SCOPES.get(membership.role, ()))
    if membership.pk != actor.membership.pk or membership.organisation_id != actor.membership.organisation_id:
        raise _membership_changed()
    return Actor(user=membership.user, membership=membership, scopes=scopes, token=token)


def check_token_create(actor: Actor, *, scopes) -> None:
    """No escalation: credentials create only tokens whose scopes are within their own.

    A session's scopes are its role's; a token's are its own within the role's. Scopes
    beyond the role are refused as invalid input by accounts.services.token_create.
    """
    beyond = sorted((set(scopes) & ROLE_SCOPES.get(actor.membership.role, set())) - actor.scopes)
    if beyond:
        raise Forbidden(
            f"These credentials cannot grant {', '.join(beyond)}: a new token's scopes must be within "
            f"the credentials' own ({', '.join(sorted(actor.scopes)) or 'none'}).",
            code="scope_escalation",
        )


def check_token_revoke(actor: Actor, *, token: ApiToken) -> None:
    """A token revokes only tokens within its own scopes (a read token cannot cut off a
    trading bot); a signed-in person revokes any of their own tokens, since revoking
    never adds power."""
    if actor.token is None:
        return
    beyond = sorted(set(token.scopes) - actor.scopes)
    if beyond:
        raise Forbidden(
            f"This token cannot revoke a token with {', '.join(beyond)}; use a token with those scopes "
            "or the tokens page.",
            code="scope_escalation",
        )


def check_funds_recorder(actor: Actor) -> None:
    """Deposits and withdrawals move money for any organisation: only the operator's
    treasury does it, with credentials holding the ``funds`` scope (a treasurer's session,
    or a treasurer's token made with ``funds``)."""
    check_actor(actor, scope="read", acting=True)
    if actor.organisation.kind != Organisation.Kind.OPERATOR or "funds" not in actor.scopes:
        raise Forbidden(
            "Only the exchange operator's treasury records deposits and withdrawals "
            "(a treasurer, with the 'funds' scope).",
            code="funds_forbidden",
        )


def check_supervisor(actor: Actor) -> None:
    """Decisions of the regulator (disputes, and the console's actions): a member of a
    regulator organisation, with the ``supervise`` scope."""
    check_actor(actor, scope="supervise", acting=True)
    if not actor.is_regulator or actor.organisation.kind != Organisation.Kind.REGULATOR:
        raise Forbidden("Only the regulator decides this.", code="not_regulator")


def role_scopes_sql() -> str:
    """``cx_role_scopes(role)``: ROLE_SCOPES for order entry's statement, generated so the
    database and Python cannot disagree about what a role allows."""
    cases = " ".join(
        f"WHEN '{role}' THEN ARRAY[{', '.join(repr(s) for s in sorted(scopes))}]::text[]"
        for role, scopes in sorted(ROLE_SCOPES.items())
    )
    return (
        "CREATE OR REPLACE FUNCTION cx_role_scopes(p_role text) RETURNS text[] LANGUAGE sql IMMUTABLE AS "
        f"$$ SELECT CASE p_role {cases} ELSE '{{}}'::text[] END $$"
    )


__all__ = [
    "Actor", "AppError", "actor_from_token", "actor_from_user", "actor_refresh", "check_actor",
    "check_funds_recorder", "check_supervisor", "check_token_create", "check_token_revoke", "role_scopes_sql",
]
