"""Writes for accounts: sign-up, organisations, memberships, API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, BeneficialOwner, Membership, Organisation, User
from exchange.errors import AppError, Forbidden

ROLE_SCOPES: dict[str, set[str]] = {
    Membership.Role.TRADER: {"read", "trade"},
    Membership.Role.PROVIDER_ADMIN: {"read", "trade", "provide"},
    Membership.Role.VIEWER: {"read"},
    Membership.Role.REGULATOR: {"read", "supervise"},
    Membership.Role.TREASURER: {"read", "funds"},
}
SIGN_UP_KINDS = {Organisation.Kind.BUYER: Membership.Role.TRADER, Organisation.Kind.PROVIDER: Membership.Role.PROVIDER_ADMIN}
TOKEN_PREFIX = "cx_"


def organisation_create(
    *,
    name: str,
    kind: str,
    city: str = "",
    kyc_status: str = Organisation.Kyc.PENDING,
    beneficial_owner: BeneficialOwner | None = None,
) -> Organisation:
    name = name.strip()
    if not name:
        raise AppError("invalid", "The organisation needs a name.", fields={"organisation_name": "Required."})
    if kind not in Organisation.Kind.values:
        raise AppError("invalid", f"Unknown organisation kind {kind!r}.", fields={"kind": "Unknown kind."})
    if Organisation.objects.filter(name__iexact=name).exists():
        raise AppError(
            "organisation_exists",
            f"An organisation named {name!r} is already registered.",
            fields={"organisation_name": "Already registered."},
        )
    owner = beneficial_owner or BeneficialOwner.objects.create(name=name)
    return Organisation.objects.create(
        name=name, kind=kind, city=city, kyc_status=kyc_status, beneficial_owner=owner
    )


@transaction.atomic
def user_sign_up(*, email: str, password: str, organisation_name: str, kind: str, city: str = "") -> User:
    """A new person with a new organisation (KYC pending) that they administer."""
    email = (email or "").strip().lower()
    fields: dict[str, str] = {}
    try:
        validate_email(email)
    except ValidationError:
        fields["email"] = "Enter a valid e-mail address."
    if not fields and User.objects.filter(email=email).exists():
        fields["email"] = "An account with this e-mail address exists; sign in instead."
    if kind not in SIGN_UP_KINDS:
        fields["kind"] = "Choose buyer or provider."
    try:
        validate_password(password or "", User(email=email))
    except ValidationError as exc:
        fields["password"] = " ".join(exc.messages)
    if fields:
        raise AppError("invalid", "Please correct the marked fields.", fields=fields)
    organisation = organisation_create(name=organisation_name, kind=kind, city=city)
    user = User.objects.create_user(email=email, password=password)
    Membership.objects.create(user=user, organisation=organisation, role=SIGN_UP_KINDS[kind])
    return user


def membership_add(*, user: User, organisation: Organisation, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise AppError("invalid", f"Unknown role {role!r}.", fields={"role": "Unknown role."})
    membership, _ = Membership.objects.update_or_create(
        user=user, organisation=organisation, defaults={"role": role}
    )
    return membership


def organisation_set_kyc(*, organisation: Organisation, status: str) -> Organisation:
    if status not in Organisation.Kyc.values:
        raise AppError("invalid", f"Unknown KYC status {status!r}.", fields={"kyc_status": "Unknown status."})
    organisation.kyc_status = status
    organisation.save(update_fields=["kyc_status"])
    return organisation


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(
    *, membership: Membership, name: str, scopes: list[str], expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token; return it with its secret, which is never stored nor shown again."""
    fields: dict[str, str] = {}
    name = (name or "").strip()
    if not name:
        fields["name"] = "Give the token a name, such as the program that will use it."
    elif len(name) > 100:
        fields["name"] = "At most 100 characters."
    scopes = sorted(set(scopes or []))
    allowed = ROLE_SCOPES[membership.role]
    if not scopes:
        fields["scopes"] = "Choose at least one scope."
    elif unknown := [s for s in scopes if s not in ApiToken.Scope.values]:
        fields["scopes"] = f"Unknown scope(s): {', '.join(unknown)}."
    elif not set(scopes) <= allowed:
        fields["scopes"] = (
            f"Your role ({membership.get_role_display()}) allows only: {', '.join(sorted(allowed))}."
        )
    if expires_at is not None and expires_at <= timezone.now():
        fields["expires_at"] = "The expiry must be in the future."
    if fields:
        raise AppError("invalid", "The token could not be created.", fields=fields)
    if membership.organisation.is_suspended:
        raise Forbidden("Your organisation is suspended; it cannot create API tokens.", code="organisation_suspended")
    prefix = secrets.token_hex(6)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        membership=membership,
        name=name,
        prefix=prefix,
        token_hash=token_hash(raw),
        scopes=scopes,
        expires_at=expires_at,
    )
    return token, raw


def token_revoke(*, token: ApiToken, user: User) -> ApiToken:
    if token.membership.user_id != user.id:
        raise Forbidden("You can revoke only your own tokens.")
    if token.revoked_at is None:
        # Conditional update: a second revoke keeps the first time.
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        token.refresh_from_db(fields=["revoked_at"])
    return token


def token_check_active(token: ApiToken) -> datetime:
    """Refuse (401) a revoked or expired token, or one whose user is deactivated; the time checked."""
    now = timezone.now()
    if token.revoked_at is not None:
        raise AppError("token_revoked", "The API token was revoked.", status_code=401)
    if token.expires_at is not None and token.expires_at <= now:
        raise AppError("token_expired", "The API token has expired; create a new one.", status_code=401)
    if not token.membership.user.is_active:
        raise AppError("user_inactive", "The token's user is deactivated.", status_code=401)
    return now


def token_verify(raw: str) -> ApiToken:
    """The active token for ``raw``, with its membership, organisation and user; or AppError 401."""
    parts = (raw or "").split("_")
    if len(parts) < 3 or not raw.startswith(TOKEN_PREFIX):
        raise AppError("token_invalid", "The API token is malformed.", status_code=401)
    prefix = parts[1]
    token = (
        ApiToken.objects.select_related("membership__organisation", "membership__user")
        .filter(prefix=prefix)
        .first()
    )
    if token is None or not hmac.compare_digest(token.token_hash, token_hash(raw)):
        raise AppError("token_invalid", "The API token is not known.", status_code=401)
    now = token_check_active(token)
    # One write a minute per token at most: last-used is for people, not an audit trail.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
