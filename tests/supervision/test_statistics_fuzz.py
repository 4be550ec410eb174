"""The statistics operations fuzzed as the regulator, the one caller they answer 200 (the shared
fuzzer, tests/test_api_fuzz.py, calls as others, who are refused before any filter is read)."""

import os

import pytest

from tests import fuzz, processes
from tests.conftest import token_client
from tests.exchange.conftest import fee_tier  # noqa: F401 (a fixture)
from tests.settlement.conftest import sla_schedule  # noqa: F401 (a fixture)
from tests.supervision.statistics_market import statistics_market_make

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2"))


def test_the_statistics_answer_the_regulator_as_documented_and_never_5xx(fee_tier, sla_schedule, regulator,  # noqa: F811
                                                                          tmp_path):
    statistics_market_make(regulator)
    token = token_client(regulator, ("read",)).raw_token
    log = tmp_path / "server.log"
    with log.open("w") as stderr:
        process, base_url = processes.serve(stderr=stderr, THROTTLE_USER="1000000/min")
        try:
            schema = fuzz.load(base_url).include(path_regex="^/api/v1/supervision/statistics/")
            summary = fuzz.run(base_url=base_url, actors={"regulator": {"Authorization": f"Token {token}"}},
                               examples=max(EXAMPLES, 10), schema=schema)
        finally:
            processes.stop(process)
    print("\n" + summary.report(detail=True))
    assert "synchronous iterators" not in log.read_text()  # the CSVs stream under ASGI
    assert summary.by_status[200] > 0 and summary.by_status[400] > 0, summary.report()
    assert summary.server_errors == 0 and not summary.findings, summary.report(detail=True) + f"\n{log.read_text()}"
