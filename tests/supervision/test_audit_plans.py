"""Every branch of the audit trail reads through indexes, whatever the filters: EXPLAIN each
query (with sequential scans priced out, so the plan shows which indexes exist for it) and
find the filter among the indexes' conditions, never a sequential scan."""

import itertools
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from supervision.audit.branches import BRANCHES, KINDS, WINDOWED, Scope
from supervision.audit.windows import id_windows
from tests.exchange.conftest import fee_tier  # noqa: F401 (a fixture)
from tests.settlement.conftest import market, sla_schedule  # noqa: F401 (fixtures)
from tests.supervision.audit_world import audit_world

pytestmark = pytest.mark.django_db

ORGANISATION_COLUMNS = ("organisation_id", "holder_id", "provider_id", "buyer_id", "seller_id", "regulator_id")
TIME_COLUMNS = ("created_at", "started_at", "answered_at", "opened_at", "resolved_at", "settled_at")


def _nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def plan_of(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return list(_nodes(plan[0]["Plan"]))


def index_conditions(nodes) -> str:
    return " ".join(node.get("Index Cond", "") + " " + node.get("Recheck Cond", "") for node in nodes)


def _pending(node) -> bool:
    # The inbox's pending commands are read whole through inbox_pending_idx (they are few) and
    # filtered there, by design.
    return node.get("Index Name") == "inbox_pending_idx" or node.get("Recheck Cond") == "(processed_at IS NULL)"


def row_filters(nodes) -> str:
    """Conditions checked on rows already read (what an index did not narrow)."""
    return " ".join(node.get("Filter", "") + " " + node.get("Join Filter", "") for node in nodes if not _pending(node))


def test_every_branch_reads_through_indexes_for_every_filter(market, provider, regulator):
    world = audit_world(market, provider, regulator)
    organisation = world.parties.members["holder"].organisation_id
    instrument = world.other_instrument.id
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    checked = 0
    for branch in BRANCHES:
        for org, ins, window, after in itertools.product((None, organisation), (None, instrument), (False, True),
                                                         (False, True)):
            start, end = (now - timedelta(days=1), now + timedelta(days=1)) if window else (None, None)
            scope = Scope(org, ins, start, end, frozenset(KINDS), id_windows(WINDOWED, start=start, end=end))
            sql, params = branch.query(scope, after=(now, 10**12) if after else None, limit=50)
            nodes = plan_of(sql, {**params, "limit": 50})
            where = f"{branch.name} organisation={org} instrument={ins} window={window} after={after}"
            assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], where
            conditions = index_conditions(nodes)
            served = {
                "organisation": any(column in conditions for column in ORGANISATION_COLUMNS),
                "instrument": "instrument_id" in conditions,
                # A trading table's window is an id range; the others' a time range.
                "window": any(f"{key} >=" in conditions for key in ("(id", "(seq"))
                or any(f"({column} >=" in conditions for column in TIME_COLUMNS),
                "after": "<" in conditions,
            }
            asked = [name for name, on in (("organisation", org), ("instrument", ins), ("window", window),
                                           ("after", after)) if on]
            filtered = row_filters(nodes)
            unserved = {"organisation": any(column in filtered for column in ORGANISATION_COLUMNS),
                        "instrument": "instrument_id" in filtered, "window": False, "after": False}
            if len(asked) == 1:  # a filter alone is an index condition, on every table it applies to
                assert served[asked[0]] and not unserved[asked[0]], (where, conditions, filtered)
            elif asked:  # with others, at least one of them is (the planner picks the narrowest)
                assert any(served[name] for name in asked), (where, conditions)
            checked += 1
    assert checked == len(BRANCHES) * 16
