"""Schemathesis over the whole API, against the real server (``python -m exchange.serve``,
the fast order path included) on the test database.

``make test`` runs a short, derandomised pass (``FUZZ_EXAMPLES``, default 2 examples per
operation and mode, each sent by every actor: about 700 requests); ``make fuzz`` the same
with 40 (at least 10,000 requests). ``FUZZ_DETAIL=1`` prints each failure in full.
"""

import os
from pathlib import Path

import pytest

from accounts.access import actor_from_token
from accounts.models import Membership, Organisation
from accounts.services import token_create
from exchange import ledger, services
from tests import fuzz, processes
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import MembershipFactory
from tests.settlement.parties import allocation_make, dispute_make

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2"))
# The fuzzer is one client sending fast: the limits under test elsewhere would only answer 429.
UNTHROTTLED = {"THROTTLE_ANON": "1000000/min", "THROTTLE_USER": "1000000/min",
               "THROTTLE_MARKETPLACE_WRITE": "1000000/min", "THROTTLE_ORDERS": "1000000/min"}


def _token(membership, scopes) -> str:
    return token_create(membership=membership, name="fuzz", scopes=list(scopes))[1]


def _alert(member):
    """A surveillance alert for the regulator to review and close."""
    from supervision.models import Alert, Rule
    from supervision.surveillance.params import rules_ensure

    rules_ensure()
    return Alert.objects.create(rule=Rule.objects.get(code="hoarding"), key="fuzz", severity="medium",
                                evidence={"figures": {}, "orders": [], "trades": []},
                                organisation_ids=[member.organisation_id])


@pytest.fixture
def market():
    """A verified, funded buyer and a listed provider in one continuous instrument, with an
    order resting; returns the actors' headers and the ids of objects that exist."""
    from exchange.models import FeeTier

    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    buyer = MembershipFactory(organisation__kind=Organisation.Kind.BUYER, role=Membership.Role.TRADER)
    provider = MembershipFactory(organisation__kind=Organisation.Kind.PROVIDER, role=Membership.Role.PROVIDER_ADMIN)
    instrument = make_instrument()
    period = list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=1000)
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    buyer_token = _token(buyer, ("read", "trade"))
    provider_token = _token(provider, ("read", "trade", "provide"))
    spare = token_create(membership=buyer, name="spare", scopes=["read"])[0]
    order, _ = services.order_place(actor=actor_from_token(buyer_token), data={
        "instrument": instrument.code, "side": "buy", "price": "19.00", "qty": 10, "client_order_id": "fuzz-resting"})
    listing = period.listing
    # Settlement: the buyer holds an allocation of the provider's capacity (another day) and disputes it.
    allocation = allocation_make(provider=provider, buyer=buyer)
    # Supervision: a regulator that may decide, and an organisation waiting for KYC to decide about.
    regulator = MembershipFactory(organisation__kind=Organisation.Kind.REGULATOR, role=Membership.Role.REGULATOR)
    applicant = MembershipFactory(organisation__kind=Organisation.Kind.BUYER,
                                  organisation__kyc_status=Organisation.Kyc.PENDING, role=Membership.Role.TRADER)
    known = {"code": instrument.code, "id": listing.id, "pk": listing.id, "token_id": spare.id,
             "order_id": order.id, "allocation_id": allocation.id,
             "dispute_id": dispute_make(allocation, by=buyer).id, "organisation_id": applicant.organisation_id,
             "asset_id": listing.asset_id, "alert_id": _alert(buyer).id}
    actors = {"anonymous": {}, "buyer": {"Authorization": f"Token {buyer_token}"},
              "provider": {"Authorization": f"Token {provider_token}"},
              "regulator": {"Authorization": f"Token {_token(regulator, ('read', 'supervise'))}"}}
    return actors, known


@pytest.fixture
def server(market, tmp_path):
    """The web server; its log (the tracebacks of any 500) goes to a file named in the report."""
    log = Path(os.environ.get("FUZZ_LOG") or tmp_path / "server.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stderr:
        process, base_url = processes.serve(stderr=stderr, **UNTHROTTLED)
        try:
            yield base_url, log
        finally:
            processes.stop(process)


def test_every_operation_answers_as_documented_and_never_5xx(server, market):
    base_url, log = server
    actors, known = market
    summary = fuzz.run(base_url=base_url, actors=actors, examples=EXAMPLES, known=known)
    print("\n" + summary.report(detail=bool(os.environ.get("FUZZ_DETAIL"))) + f"\nserver log: {log}")
    assert summary.requests >= int(os.environ.get("FUZZ_MIN_REQUESTS", "300"))
    assert summary.server_errors == 0 and not summary.findings, summary.report() + f"\nserver log: {log}"
