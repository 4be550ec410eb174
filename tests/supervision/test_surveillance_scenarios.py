"""The scenario generator's patterns, each flagged with its evidence; clean trading flagged never.

Transactional: every order commits as it would in the exchange, so entry times are the
database's clock at each order (inside one test transaction they would all be its start).
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from supervision.models import Rule
from supervision.surveillance.params import rules_ensure
from supervision.surveillance.scenarios import PATTERNS, scenario_run

pytestmark = pytest.mark.django_db(transaction=True)

SEVERITY = {"wash_same_owner": "high", "wash_circular": "high", "spoofing": "high", "marking_close": "medium",
            "hoarding": "medium", "withholding": "medium", "price_move": "info", "volatility_auction": "info"}


def severity(alert) -> str:
    if alert.rule.code == "concentration":  # by level: highly or moderately concentrated
        return "high" if alert.key.endswith(":high") else "medium"
    return SEVERITY[alert.rule.code]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_pattern_is_flagged_with_its_evidence(pattern):
    outcome = scenario_run([pattern], rounds=30, providers=12, clean_instruments=0)
    assert outcome.ok, outcome.report()
    assert [a.severity for a in outcome.alerts] == [severity(a) for a in outcome.alerts]


def test_spoofing_split_between_two_organisations_of_one_owner_is_one_alert_naming_both():
    outcome = scenario_run(["spoofing_group"], rounds=30, providers=12, clean_instruments=0)
    assert outcome.ok, outcome.report()
    (expected,) = outcome.expected
    (alert,) = [a for a in outcome.alerts if a.rule.code == "spoofing"]
    assert set(alert.organisation_ids) == expected.organisation_ids and len(expected.organisation_ids) == 2
    assert set(alert.evidence["orders"]) == expected.orders and set(alert.evidence["trades"]) == expected.trades
    assert alert.evidence["figures"]["opposite_trades"] == len(expected.trades)


def test_clean_trading_among_many_participants_raises_no_alert():
    outcome = scenario_run([], rounds=40, buyers=12, providers=12, clean_instruments=4)
    assert outcome.trades > 300 and outcome.participants == 24
    assert outcome.alerts == [], outcome.report()


def test_every_pattern_at_once_among_many_participants():
    outcome = scenario_run(PATTERNS, rounds=40, buyers=12, providers=12, seed=7)
    assert {e.pattern for e in outcome.expected} == set(PATTERNS)
    assert outcome.ok, outcome.report()


def scenarios_command(*args: str) -> str:
    out = StringIO()
    call_command("surveillance_scenarios", *args, stdout=out)
    return out.getvalue()


SMALL = ("--rounds", "3", "--buyers", "8", "--providers", "6", "--clean-instruments", "0")


def test_the_command_reports_each_pattern_flagged():
    report = scenarios_command("--patterns", "wash_circular", *SMALL)
    assert "flagged  wash_circular" in report and "every pattern flagged, nothing else" in report


def test_the_command_fails_when_surveillance_misses_a_pattern():
    rules_ensure()
    assert Rule.objects.filter(code="wash_circular").update(enabled=False) == 1  # the regulator switched it off
    with pytest.raises(CommandError, match="surveillance missed a pattern"):
        scenarios_command("--patterns", "wash_circular", *SMALL)


@pytest.mark.parametrize("args, message", [
    (("--patterns", "wash_circular,front_running"), "unknown patterns front_running; choose from wash_same_owner"),
    (("--patterns", "spoofing", "--buyers", "7"), "at least 1 round, 8 buyers and 6 providers"),
    (("--patterns", "spoofing", "--providers", "5"), "at least 1 round, 8 buyers and 6 providers"),
    (("--patterns", "spoofing", "--rounds", "0"), "at least 1 round, 8 buyers and 6 providers"),
], ids=["unknown-pattern", "7-buyers", "5-providers", "no-rounds"])
def test_the_command_refuses_unknown_patterns_and_too_few_participants(args, message):
    with pytest.raises(CommandError, match=message):
        scenarios_command(*args)
