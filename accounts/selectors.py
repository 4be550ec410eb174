"""Reads for accounts."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiToken, Membership, User


def membership_current(*, user: User) -> Membership | None:
    """The membership a signed-in person acts through: their first (oldest) one."""
    if not user.is_authenticated:
        return None
    return user.memberships.select_related("organisation").order_by("created_at", "id").first()


def token_list(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(membership__user=user).select_related("membership__organisation")
