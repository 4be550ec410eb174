"""Settlement's invariants, verified by ``manage.py check_ledger`` with the ledger's."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone


def _rows(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def settlement_check() -> list[str]:
    now = timezone.now()
    overdue_before = now - timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS + settings.SETTLEMENT_OVERDUE_SECONDS)
    problems = []
    # Every ended allocation is settled or waits for a named reason: its dispute window, an
    # open dispute, or its resales. Past all of those by SETTLEMENT_OVERDUE_SECONDS, no runner settled it.
    problems += [
        f"allocation {a}: delivery ended {end:%Y-%m-%d %H:%M} UTC and its dispute window passed, but it is not "
        f"settled and waits for nothing (is the settlement runner running?)"
        for a, end in _rows(
            "SELECT a.id, i.delivery_end FROM exchange_allocation a JOIN exchange_trade t ON t.id = a.trade_id "
            "JOIN exchange_instrument i ON i.id = t.instrument_id WHERE a.settled_at IS NULL AND i.delivery_end < %s "
            "AND NOT EXISTS (SELECT 1 FROM settlement_dispute d WHERE d.allocation_id = a.id AND d.state = 'open') "
            "AND NOT EXISTS (SELECT 1 FROM exchange_allocation c WHERE c.source_id = a.id AND c.settled_at IS NULL) "
            "ORDER BY a.id LIMIT 20", [overdue_before])
    ]
    problems += [
        f"allocation {a}: settled_at and its settlement record disagree"
        for (a,) in _rows(
            "SELECT a.id FROM exchange_allocation a FULL JOIN settlement_settlement s ON s.allocation_id = a.id "
            "WHERE (a.settled_at IS NULL) <> (s.allocation_id IS NULL) LIMIT 20")
    ]
    problems += [
        f"allocation {a}: settled {s_scu} SCU·h = {d} delivered + {r} refunded, but it is {scu} SCU·h"
        for a, s_scu, d, r, scu in _rows(
            "SELECT s.allocation_id, s.scu_h, s.delivered_scu_h, s.refunded_scu_h, a.scu_h FROM settlement_settlement s "
            "JOIN exchange_allocation a ON a.id = s.allocation_id "
            "WHERE s.scu_h <> a.scu_h OR s.delivered_scu_h + s.refunded_scu_h <> a.scu_h LIMIT 20")
    ]
    problems += [
        f"allocation {a}: owner payouts sum to {paid} fen, the seller's proceeds were {proceeds} fen"
        for a, proceeds, paid in _rows(
            "SELECT s.allocation_id, s.payout_fen, COALESCE(SUM(p.amount_fen), 0) FROM settlement_settlement s "
            "LEFT JOIN settlement_payout p ON p.settlement_id = s.allocation_id GROUP BY s.allocation_id "
            "HAVING s.payout_fen <> COALESCE(SUM(p.amount_fen), 0) LIMIT 20")
    ]
    problems += [
        f"allocation {a}: its payout journal pays {legs} fen, its owner payouts {paid} fen"
        for a, legs, paid in _rows(
            "SELECT s.allocation_id, COALESCE(j.paid, 0), s.payout_fen FROM settlement_settlement s LEFT JOIN "
            "(SELECT j.allocation_id, SUM(l.amount_fen) AS paid FROM exchange_journal j "
            " JOIN exchange_ledgerleg l ON l.journal_id = j.id WHERE j.kind = 'payout' AND l.amount_fen > 0 "
            " GROUP BY j.allocation_id) j ON j.allocation_id = s.allocation_id "
            "WHERE COALESCE(j.paid, 0) <> s.payout_fen LIMIT 20")
    ]
    # Escrow (its legs: a wrong cached balance is ledger_check's to name) holds exactly the
    # value of what the organisation holds and has not settled.
    problems += [
        f"organisation {org}: escrow is {balance} fen, its unsettled allocations are worth {value} fen"
        for org, balance, value in _rows(
            "SELECT COALESCE(e.org, v.org), COALESCE(e.balance, 0), COALESCE(v.value, 0) FROM "
            "(SELECT a.organisation_id AS org, SUM(l.amount_fen) AS balance FROM exchange_ledgeraccount a "
            " JOIN exchange_ledgerleg l ON l.account_id = a.id WHERE a.kind = 'escrow' GROUP BY a.organisation_id) e "
            "FULL JOIN "
            "(SELECT a.holder_id AS org, SUM(a.scu_h * t.price_fen) AS value FROM exchange_allocation a "
            " JOIN exchange_trade t ON t.id = a.trade_id WHERE a.settled_at IS NULL GROUP BY a.holder_id) v "
            "ON v.org = e.org WHERE COALESCE(e.balance, 0) <> COALESCE(v.value, 0) LIMIT 20")
    ]
    problems += [
        f"allocation {a}: metered {metered} SCU·h of the {deliverable} SCU·h it delivers"
        for a, metered, deliverable in _rows(
            "SELECT a.id, ROUND(SUM(m.device_hours) * l.factor), a.scu_h - a.resold_scu_h FROM exchange_allocation a "
            "JOIN settlement_meterreport m ON m.allocation_id = a.id "
            "JOIN marketplace_listingperiod p ON p.id = a.listing_period_id JOIN marketplace_listing l ON l.id = p.listing_id "
            "GROUP BY a.id, l.factor HAVING ROUND(SUM(m.device_hours) * l.factor) > a.scu_h - a.resold_scu_h LIMIT 20")
    ]
    # What is owed is what the debt records say is outstanding, on both sides.
    problems += [
        f"organisation {org}: {kind} account {balance} fen, outstanding debts say {expected} fen"
        for org, kind, balance, expected in _rows(
            "SELECT a.organisation_id, a.kind, a.balance, COALESCE(CASE a.kind WHEN 'debt' THEN -d.owed ELSE c.due END, 0) "
            "FROM exchange_ledgeraccount a "
            "LEFT JOIN (SELECT debtor_id, SUM(amount_fen - repaid_fen) AS owed FROM settlement_debt GROUP BY debtor_id) d "
            "ON d.debtor_id = a.organisation_id "
            "LEFT JOIN (SELECT creditor_id, SUM(amount_fen - repaid_fen) AS due FROM settlement_debt "
            " WHERE creditor_id IS NOT NULL GROUP BY creditor_id) c ON c.creditor_id = a.organisation_id "
            "WHERE a.kind IN ('debt', 'receivable') "
            "AND a.balance <> COALESCE(CASE a.kind WHEN 'debt' THEN -d.owed ELSE c.due END, 0) LIMIT 20")
    ]
    return problems
