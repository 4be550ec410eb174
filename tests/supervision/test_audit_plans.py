"""Every branch of the audit trail reads through indexes, whatever the filters.

EXPLAIN each branch's query under every combination of filters with sequential scans
priced out: a ``Seq Scan`` left in a plan is a table the query cannot reach through any
index. Which index the planner picks depends on the statistics (a tiny partial index read
whole can beat the filter's own), so the indexes each filter needs are checked to exist
too; tests/supervision/test_audit_export.py shows the planner choosing them on a busy day.
"""

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

TABLES = ("exchange_order", "exchange_inboxcommand", "exchange_trade", "exchange_allocation",
          "marketplace_listingperiod", "supervision_supervisionaction", "settlement_delivery",
          "settlement_meterreport", "settlement_dispute", "settlement_settlement", "settlement_payout")

# What each filter reads by, table by table: an index must start with these columns.
NEEDED = {
    "organisation": [("exchange_order", "organisation_id"), ("exchange_inboxcommand", "order_id"),
                     ("exchange_trade", "buyer_id"), ("exchange_trade", "seller_id"),
                     ("supervision_supervisionaction", "organisation_id"),
                     ("supervision_supervisionaction", "regulator_id"), ("exchange_allocation", "holder_id"),
                     ("marketplace_listingperiod", "provider_id"), ("exchange_allocation", "listing_period_id"),
                     ("settlement_settlement", "holder_id"), ("settlement_settlement", "seller_id"),
                     ("settlement_payout", "organisation_id")],
    "instrument": [("exchange_inboxcommand", "instrument_id"), ("exchange_trade", "instrument_id"),
                   ("supervision_supervisionaction", "instrument_id"), ("exchange_allocation", "trade_id"),
                   ("settlement_meterreport", "allocation_id"), ("settlement_dispute", "allocation_id"),
                   ("settlement_payout", "settlement_id")],
    "time": [("supervision_supervisionaction", "created_at"), ("settlement_delivery", "started_at"),
             ("settlement_delivery", "answered_at"), ("settlement_meterreport", "created_at"),
             ("settlement_dispute", "opened_at"), ("settlement_dispute", "resolved_at"),
             ("settlement_settlement", "settled_at")],
    # Newest first without a filter: the trading tables by their keys, the inbox's changes by theirs.
    "order": [("exchange_order", "id"), ("exchange_inboxcommand", "seq"), ("exchange_trade", "id")],
}


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


def test_every_branch_reads_through_indexes_for_every_filter(market, provider, regulator):
    world = audit_world(market, provider, regulator)
    organisation = world.parties.members["holder"].organisation_id
    instrument = world.other_instrument.id
    now = timezone.now()
    with connection.cursor() as cursor:
        for table in TABLES:  # statistics of this world, not of what earlier tests left
            cursor.execute(f"ANALYZE {table}")
        cursor.execute("SET LOCAL enable_seqscan = off")
    checked = 0
    for branch in BRANCHES:
        for org, ins, window, after, newer in itertools.product(
                (None, organisation), (None, instrument), (False, True), (False, True), (False, True)):
            start, end = (now - timedelta(days=1), now + timedelta(days=1)) if window else (None, None)
            scope = Scope(org, ins, start, end, frozenset(KINDS), id_windows(WINDOWED, start=start, end=end))
            sql, params = branch.query(scope, after=(now, 10**12) if after else None, limit=50, newer=newer)
            nodes = plan_of(sql, {**params, "limit": 50})
            scans = [(node.get("Relation Name"), node.get("Filter"))
                     for node in nodes if node["Node Type"] == "Seq Scan"]
            assert not scans, (branch.name, org, ins, window, after, newer, scans)
            checked += 1
    assert checked == len(BRANCHES) * 32


def test_every_filter_has_its_indexes():
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT t.relname, a.attname
            FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
            WHERE t.relname = ANY(%s)""", [list(TABLES)])
        leading = set(cursor.fetchall())
    missing = {name: [need for need in needs if need not in leading] for name, needs in NEEDED.items()}
    assert not any(missing.values()), missing
