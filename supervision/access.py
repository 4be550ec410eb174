"""Who may use the console: members of a regulator organisation in the regulator role.

Reading needs ``read``; every action needs ``supervise`` (accounts.access.check_supervisor).
Operators keep the Django admin; superusers are not regulators here.
"""

from __future__ import annotations

from accounts.access import Actor, check_actor, check_supervisor
from accounts.models import Organisation
from exchange.errors import Forbidden


def check_console_reader(actor: Actor) -> None:
    check_actor(actor, scope="read", acting=False)
    if not actor.is_regulator or actor.organisation.kind != Organisation.Kind.REGULATOR:
        raise Forbidden("The supervision console is for the regulator.", code="not_regulator")


__all__ = ["check_console_reader", "check_supervisor"]
