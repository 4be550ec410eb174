"""Reads for the participants' pages and API. Each list loads what its rows show in a fixed
number of queries, however many rows there are."""

from __future__ import annotations

from django.db.models import Case, Count, IntegerField, Prefetch, Q, Value, When

from accounts.models import BeneficialOwner, Membership, Organisation
from exchange.errors import NotFound
from exchange.models import FeeTier, MemberTier
from marketplace.models import AttestorKey
from supervision.models import SupervisionAction
from supervision.participants.services import PARTICIPANT_KINDS, id_or_none

Kyc = Organisation.Kyc
MEMBERS = Prefetch("memberships", queryset=Membership.objects.select_related("user").order_by("created_at", "id"))
# The owner group's organisations: a new applicant in a known group is worth a look.
GROUP = Prefetch("beneficial_owner__organisations", queryset=Organisation.objects.order_by("name"))
HISTORY_SHOWN = 50


def participants(*, status: str | None = None, kind: str | None = None, search: str | None = None):
    """Participants with their owner group, fee tier and members: pending KYC first, oldest
    application first (a queue), then everyone else, oldest first."""
    queryset = (Organisation.objects.filter(kind__in=PARTICIPANT_KINDS)
                .select_related("beneficial_owner", "fee_tier__tier").prefetch_related(MEMBERS, GROUP)
                .annotate(queue=Case(When(kyc_status=Kyc.PENDING, then=Value(0)), default=Value(1),
                                     output_field=IntegerField())))
    if status:
        queryset = queryset.filter(kyc_status=status)
    if kind:
        queryset = queryset.filter(kind=kind)
    if search:
        queryset = queryset.filter(Q(name__icontains=search) | Q(city__icontains=search)
                                   | Q(beneficial_owner__name__icontains=search)
                                   | Q(memberships__user__email__icontains=search)).distinct()
    return queryset.order_by("queue", "created_at", "id")


def kyc_counts() -> dict[str, int]:
    """Participants per KYC status, every status present (0 where none)."""
    counts = dict(Organisation.objects.filter(kind__in=PARTICIPANT_KINDS).order_by().values_list("kyc_status")
                  .annotate(n=Count("pk")))
    return {status: counts.get(status, 0) for status in Kyc.values}


def participant(organisation_id) -> Organisation:
    """One participant with its members, owner group (and the group's other organisations),
    fee tier and attestor keys; 404 for anyone else."""
    pk = id_or_none(organisation_id)
    organisation = (Organisation.objects.filter(kind__in=PARTICIPANT_KINDS)
                    .select_related("beneficial_owner", "fee_tier__tier")
                    .prefetch_related(MEMBERS, GROUP, Prefetch("attestor_keys", queryset=AttestorKey.objects.annotate(
                                          attestation_count=Count("attestations")).order_by("created_at")))
                    .filter(pk=pk).first() if pk else None)
    if organisation is None:
        raise NotFound(f"No participant {organisation_id}.", code="organisation_not_found")
    return organisation


def participant_history(organisation: Organisation, *, limit: int = HISTORY_SHOWN) -> list[SupervisionAction]:
    """The regulator's recorded decisions about the organisation, newest first."""
    return list(SupervisionAction.objects.filter(organisation=organisation).select_related("actor", "regulator")
                .order_by("-created_at", "-id")[:limit])


def owner_groups():
    """Beneficial-owner groups with their organisations; groups of several organisations first
    (the ones surveillance treats as one), then by name."""
    return (BeneficialOwner.objects.annotate(size=Count("organisations"))
            .prefetch_related(Prefetch("organisations", queryset=Organisation.objects.order_by("name")))
            .order_by("-size", "name", "id"))


def owner_choices() -> list[tuple[int, str]]:
    return list(BeneficialOwner.objects.order_by("name", "id").values_list("id", "name"))


def fee_tiers():
    """Fee tiers with the participants on each; the default tier first."""
    members = MemberTier.objects.select_related("organisation").order_by("organisation__name")
    return (FeeTier.objects.prefetch_related(Prefetch("membertier_set", queryset=members, to_attr="members"))
            .order_by("-is_default", "taker_bps", "code"))


def attestors():
    """Attestor organisations with their keys (and how many attestations each key signed)."""
    return (Organisation.objects.filter(kind=Organisation.Kind.ATTESTOR)
            .select_related("beneficial_owner").prefetch_related(
                MEMBERS, Prefetch("attestor_keys", queryset=AttestorKey.objects.annotate(
                    attestation_count=Count("attestations")).order_by("created_at")))
            .annotate(queue=Case(When(kyc_status=Kyc.PENDING, then=Value(0)), default=Value(1),
                                 output_field=IntegerField()))
            .order_by("queue", "name", "id"))
