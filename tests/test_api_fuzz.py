"""Schemathesis over the whole API, against the real server (``python -m exchange.serve``,
the fast order path included) on the test database.

``make test`` runs a short, derandomised pass (``FUZZ_EXAMPLES``, default 2 examples per
operation, actor and mode: about 1,000 requests); ``make fuzz`` the same with many more.
"""

import os
import socket
import time

import pytest
import requests

from accounts.models import Membership, Organisation
from accounts.access import actor_from_token
from accounts.services import token_create
from exchange import ledger, services
from tests import fuzz, processes
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2"))
# The fuzzer is one client sending fast: the limits under test elsewhere would only answer 429.
UNTHROTTLED = {"THROTTLE_ANON": "1000000/min", "THROTTLE_USER": "1000000/min",
               "THROTTLE_MARKETPLACE_WRITE": "1000000/min", "THROTTLE_ORDERS": "1000000/min"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(base_url: str, server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "the web server exited"
        try:
            if requests.get(f"{base_url}/api/schema/?format=json", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError("the web server did not answer")


def _token(membership, scopes) -> str:
    return token_create(membership=membership, name="fuzz", scopes=list(scopes))[1]


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
    known = {"code": instrument.code, "id": listing.id, "pk": listing.id, "token_id": spare.id,
             "order_id": order.id}
    actors = {"anonymous": {}, "buyer": {"Authorization": f"Token {buyer_token}"},
              "provider": {"Authorization": f"Token {provider_token}"}}
    return actors, known


@pytest.fixture
def server(market):
    port = _free_port()
    process = processes.start("-m", "exchange.serve", "--host", "127.0.0.1", "--port", str(port), **UNTHROTTLED)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=15)
        processes.wait_for_other_sessions_to_end()


def test_every_operation_answers_as_documented_and_never_5xx(server, market):
    actors, known = market
    summary = fuzz.run(base_url=server, actors=actors, examples=EXAMPLES, known=known)
    print("\n" + summary.report(detail=bool(os.environ.get("FUZZ_DETAIL"))))
    assert summary.requests >= 54 * 3 * 2 * min(EXAMPLES, 1)
    assert summary.server_errors == 0 and not summary.findings, summary.report()
