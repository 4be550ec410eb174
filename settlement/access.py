"""Who may act on an allocation after the trade, on top of ``accounts.access.check_actor``.

- The provider (the asset's operator, ``provide`` scope) delivers and meters every
  allocation of its capacity, resold or not.
- The holder (``trade`` scope) answers delivery and disputes metering.
- A regulator decides disputes (``accounts.access.check_supervisor``) and reads all of them.

Services check these under the allocation's lock; the API asks them first as well, so a
caller who may not act is refused before its body is read (as the marketplace does).
"""

from __future__ import annotations

from accounts.access import Actor, check_actor
from accounts.models import Organisation
from exchange.errors import Forbidden
from exchange.models import Allocation
from settlement.selectors import allocation_provider_id


def check_provider(actor: Actor, allocation: Allocation) -> None:
    check_actor(actor, scope="provide", acting=True)
    if allocation_provider_id(allocation) != actor.membership.organisation_id:
        raise Forbidden(f"Allocation {allocation.pk} is delivered by its asset's provider, not by "
                        f"{actor.organisation.name}.", code="not_the_provider")


def check_holder(actor: Actor, allocation: Allocation) -> None:
    check_actor(actor, scope="trade", acting=True)
    if allocation.holder_id != actor.membership.organisation_id:
        raise Forbidden(f"Only the organisation holding allocation {allocation.pk} may do this.", code="not_the_holder")


def oversees(actor: Actor) -> bool:
    """A regulator's member reads every dispute (the role decides, as for reading assets)."""
    return actor.is_regulator and actor.organisation.kind == Organisation.Kind.REGULATOR
