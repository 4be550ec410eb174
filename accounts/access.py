"""Who is acting, for which organisation, with which scopes — checked in one place.

Every edge (DRF views, the order-entry handler, WebSocket consumers, pages) asks
:func:`actor_from_token` or :func:`actor_from_user` and then :func:`check_actor`; nothing
else decides access.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import ApiToken, Membership, Organisation, User
from accounts.selectors import membership_current
from accounts.services import ROLE_SCOPES, token_verify
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


def actor_from_token(raw: str) -> Actor:
    token = token_verify(raw)
    return Actor(user=token.membership.user, membership=token.membership, scopes=frozenset(token.scopes), token=token)


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
        raise Forbidden(
            f"{organisation.name} is awaiting KYC verification; trading opens once the regulator verifies it.",
            code="kyc_pending",
        )


def refresh_actor(actor: Actor) -> Actor:
    """Re-read organisation status so a suspension takes effect for the very next action."""
    organisation = Organisation.objects.only("kyc_status", "name").get(pk=actor.membership.organisation_id)
    actor.membership.organisation.kyc_status = organisation.kyc_status
    return actor


__all__ = ["Actor", "AppError", "actor_from_token", "actor_from_user", "check_actor", "refresh_actor"]
