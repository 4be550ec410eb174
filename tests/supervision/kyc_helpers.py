"""What the participants' and disputes' console tests share: every kind of caller, the
channel-layer listener, and a snapshot of everything the console can write."""

from __future__ import annotations

from django.db.models import Sum
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import BeneficialOwner, Membership, Organisation
from exchange.events import organisation_group
from exchange.models import EventSequence, IdempotencyRecord, MemberTier
from settlement.models import Dispute
from supervision.events import CONSOLE_GROUP
from supervision.models import SupervisionAction
from tests import channel_layer
from tests.channel_layer import received  # noqa: F401 (for the tests that listen)
from tests.conftest import token_client
from tests.factories import MembershipFactory

API = "/api/v1/supervision/"
# Callers who are not the regulator, each with every scope its role allows.
OUTSIDERS = {"buyer": ("read", "trade"), "provider": ("read", "trade", "provide"), "attestor": ("read", "provide"),
             "operator": ("read",)}


def operator_member() -> Membership:
    """A member of the exchange operator (the people who keep the Django admin)."""
    return MembershipFactory(organisation__kind=Organisation.Kind.OPERATOR, role=Membership.Role.VIEWER)


def applicant(name: str | None = None, *, kind=Organisation.Kind.BUYER, members: int = 1, **fields) -> Organisation:
    """An organisation whose KYC is pending, with ``members`` people."""
    extra = {"organisation__name": name} if name else {}
    first = MembershipFactory(organisation__kind=kind, organisation__kyc_status=Organisation.Kyc.PENDING,
                              role=Membership.Role.TRADER, **extra,
                              **{f"organisation__{k}": v for k, v in fields.items()})
    for _ in range(members - 1):
        MembershipFactory(organisation=first.organisation, role=Membership.Role.VIEWER)
    return first.organisation


def api_clients(members: dict[str, Membership], regulator: Membership) -> dict[str, APIClient]:
    """A token client per caller; the regulator twice: deciding (``supervise``) and reading only."""
    clients = {name: token_client(members[name], scopes) for name, scopes in OUTSIDERS.items()}
    clients["regulator"] = token_client(regulator, ("read", "supervise"))
    clients["regulator_read"] = token_client(regulator, ("read",))
    clients["anonymous"] = APIClient()
    return clients


def page_clients(members: dict[str, Membership], regulator: Membership) -> dict[str, Client]:
    clients = {"anonymous": Client()}
    for name, member in {**members, "regulator": regulator}.items():
        clients[name] = Client()
        clients[name].force_login(member.user)
    return clients


def post(client, path: str, body: dict, *, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(API + path, body, format="json", **headers)


def writes() -> dict:
    """Everything a console action can change, to show that a refused one changed nothing."""
    return {
        "organisations": sorted(Organisation.objects.values_list("pk", "kyc_status", "beneficial_owner_id")),
        "owners": BeneficialOwner.objects.count(),
        "tiers": sorted(MemberTier.objects.values_list("organisation_id", "tier_id")),
        "actions": SupervisionAction.objects.count(),
        "events": EventSequence.objects.aggregate(s=Sum("seq"))["s"] or 0,
        "disputes": sorted(Dispute.objects.values_list("pk", "state", "delivered_device_hours")),
        "keys": IdempotencyRecord.objects.count(),
    }


def listen(*, organisations=(), console: bool = True) -> str:
    """A channel on the real channel layer in the organisations' private groups (and the consoles')."""
    return channel_layer.listen([organisation_group(org_id) for org_id in organisations]
                                + ([CONSOLE_GROUP] if console else []))
