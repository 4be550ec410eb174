"""Organisations, people, memberships and API tokens."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra) -> "User":
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def get_by_natural_key(self, email: str) -> "User":
        return self.get(email__iexact=email)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> "User":
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person. Signs in with an e-mail address; acts for organisations through memberships."""

    username = None
    email = models.EmailField(_("e-mail address"), unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    def __str__(self) -> str:
        return self.email


class BeneficialOwner(models.Model):
    """The ultimate owner behind one or more organisations.

    Related organisations share one; self-trade prevention and wash-trade surveillance
    compare beneficial owners, not organisations.
    """

    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Organisation(models.Model):
    class Kind(models.TextChoices):
        BUYER = "buyer", _("Buyer")
        PROVIDER = "provider", _("Provider")
        ATTESTOR = "attestor", _("Attestor")
        OPERATOR = "operator", _("Exchange operator")
        REGULATOR = "regulator", _("Regulator")

    class Kyc(models.TextChoices):
        PENDING = "pending", _("Pending")
        VERIFIED = "verified", _("Verified")
        # The regulator refused the application: like pending (set-up, no trading), but the
        # queue no longer shows it; the regulator may still approve it later.
        REJECTED = "rejected", _("Rejected")
        SUSPENDED = "suspended", _("Suspended")

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    kyc_status = models.CharField(max_length=16, choices=Kyc.choices, default=Kyc.PENDING)
    beneficial_owner = models.ForeignKey(BeneficialOwner, on_delete=models.PROTECT, related_name="organisations")
    city = models.CharField(max_length=100, blank=True, help_text=_("Head office city; sets latency circles."))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_suspended(self) -> bool:
        return self.kyc_status == self.Kyc.SUSPENDED

    @property
    def is_verified(self) -> bool:
        return self.kyc_status == self.Kyc.VERIFIED


class Membership(models.Model):
    class Role(models.TextChoices):
        TRADER = "trader", _("Trader")
        PROVIDER_ADMIN = "provider_admin", _("Provider admin")
        VIEWER = "viewer", _("Viewer")
        REGULATOR = "regulator", _("Regulator")
        # The operator's people who record deposits and withdrawals.
        TREASURER = "treasurer", _("Treasurer")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organisation"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organisation} ({self.role})"


class ApiToken(models.Model):
    """A bearer token for the API. Only a SHA-256 of the secret is stored.

    The presented token is ``cx_<prefix>_<secret>``; ``prefix`` finds the row, the hash of
    the whole token proves it. The secret has 256 bits of entropy, so a fast hash is safe.
    """

    class Scope(models.TextChoices):
        READ = "read", _("Read")
        TRADE = "trade", _("Trade")
        PROVIDE = "provide", _("Provide")
        FUNDS = "funds", _("Record funds")
        SUPERVISE = "supervise", _("Supervise")

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices))
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())
