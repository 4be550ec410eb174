"""Schemathesis over the console's instrument operations as a regulator who may act (the whole-API
fuzzer's callers are all refused there), against the real server: never a 5xx, always a status
and a body the document lists."""

import os

import pytest

from accounts.services import token_create
from exchange.invariants import invariants_check
from tests import fuzz, processes
from tests.exchange.conftest import make_instrument
from tests.test_api_fuzz import UNTHROTTLED

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2"))


def test_the_instrument_actions_answer_as_documented_to_a_regulator(regulator, tmp_path):
    from exchange.models import FeeTier

    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    instrument = make_instrument()
    token = token_create(membership=regulator, name="fuzz", scopes=["read", "supervise"])[1]
    log = tmp_path / "server.log"
    with log.open("w") as stderr:
        process, base_url = processes.serve(stderr=stderr, **UNTHROTTLED)
        try:
            schema = fuzz.load(base_url).include(path_regex=r"^/api/v1/supervision/(instruments|classes|hubs|market)")
            summary = fuzz.run(base_url=base_url, actors={"regulator": {"Authorization": f"Token {token}"}},
                               examples=EXAMPLES, known={"code": instrument.code}, schema=schema)
        finally:
            processes.stop(process)
    print("\n" + summary.report(detail=bool(os.environ.get("FUZZ_DETAIL"))) + f"\nserver log: {log}")
    assert summary.requests >= 40
    assert summary.by_status[200] > 0  # the fuzzer got past the access checks
    assert summary.server_errors == 0 and not summary.findings, summary.report() + f"\nserver log: {log}"
    assert invariants_check() == []
