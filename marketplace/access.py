"""Who may do what in the marketplace, on top of ``accounts.access.check_actor``.

- Providers (organisation kind ``provider``, ``provide`` scope) register and manage their
  own assets and list capacity. KYC pending is enough for all of that: it is set-up, and
  the public market shows only verified providers' listings (asks need ``trade``, which
  pending organisations do not get).
- Attestors (kind ``attestor``, ``provide`` scope, KYC verified — the regulator's
  verification is what puts an attestor on the attestor list) register keys and post
  attestations.
- Regulators edit the catalogue (hubs, clusters, compute classes) and read every asset.
  The regulator role carries only the ``read`` scope, so the role decides, not a scope.
"""

from __future__ import annotations

from accounts.access import Actor, check_actor
from accounts.models import Organisation
from exchange.errors import Forbidden, NotFound
from marketplace.models import ComputeAsset, Listing
from marketplace.selectors import listing_visible


def check_provider(actor: Actor) -> None:
    if actor.organisation.kind != Organisation.Kind.PROVIDER and not actor.organisation.is_suspended:
        raise Forbidden(
            f"{actor.organisation.name} is not a provider organisation; only providers register assets and list capacity.",
            code="not_a_provider",
        )
    check_actor(actor, scope="provide", acting=True)


def check_attestor(actor: Actor, *, verified: bool = True) -> None:
    check_actor(actor, scope="provide", acting=True)
    organisation = actor.organisation
    if organisation.kind != Organisation.Kind.ATTESTOR:
        raise Forbidden(f"{organisation.name} is not an attestor organisation.", code="not_an_attestor")
    if verified and not organisation.is_verified:
        raise Forbidden(
            f"{organisation.name} is awaiting KYC verification; attestations count once the regulator verifies it.",
            code="kyc_pending",
        )


def check_device_registrar(actor: Actor) -> None:
    check_actor(actor, scope="provide", acting=True)
    if actor.organisation.kind not in (Organisation.Kind.PROVIDER, Organisation.Kind.ATTESTOR):
        raise Forbidden("Only providers and attestors register device types.", code="not_a_provider")


def check_regulator(actor: Actor) -> None:
    check_actor(actor, scope="read", acting=True)
    if not actor.is_regulator:
        raise Forbidden("Only the regulator edits the catalogue.", code="not_regulator")


def asset_for(actor: Actor, asset_id: int, *, manage: bool, queryset=None) -> ComputeAsset:
    """The asset if ``actor`` may see it (its provider, or a regulator reading); else 404.

    Another provider's asset is a 404, not a 403: its existence is not the caller's business.
    """
    queryset = queryset if queryset is not None else ComputeAsset.objects.select_related("hub", "cluster", "provider")
    asset = queryset.filter(pk=asset_id).first()
    if asset is None:
        raise NotFound("No asset with that id belongs to your organisation.")
    if asset.provider_id == actor.organisation.id:
        return asset
    if actor.is_regulator and not manage:
        return asset
    raise NotFound("No asset with that id belongs to your organisation.")


def check_listing_owner(actor: Actor, listing: Listing) -> None:
    """Touching another provider's listing: 403 when the market can see it anyway, else 404."""
    if listing.asset.provider_id == actor.organisation.id:
        return
    if listing_visible(listing=listing, organisation=None):
        raise Forbidden("This listing belongs to another provider.", code="not_your_listing")
    raise NotFound("No listing with that id.")
