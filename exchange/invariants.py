"""Invariants the exchange must keep; `manage.py check_ledger` and the tests verify them."""

from __future__ import annotations

from django.apps import apps
from django.db import connection

from exchange.ledger import ledger_check


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def unchecked_references() -> list[tuple[str, str, str, str, str]]:
    """(table, its key, column, referenced table, referenced column) of every foreign key declared without a
    database constraint (``db_constraint=False``): rows written in bulk by order entry and the engine (see
    models.py)."""
    return sorted(
        (model._meta.db_table, model._meta.pk.column, field.column, field.related_model._meta.db_table,
         field.target_field.column)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.is_relation and field.many_to_one and not field.db_constraint
    )


def references_check() -> list[str]:
    """Rows whose unconstrained references lead nowhere."""
    problems = []
    for table, pk, column, target, key in unchecked_references():
        problems += [
            f"{table} {row_id}: {column} {missing} does not exist in {target}"
            for row_id, missing in _rows(
                f"SELECT t.{pk}, t.{column} FROM {table} t LEFT JOIN {target} r ON r.{key} = t.{column} "
                f"WHERE t.{column} IS NOT NULL AND r.{key} IS NULL LIMIT 20")
        ]
    return problems


def invariants_check() -> list[str]:
    from settlement.invariants import settlement_check

    problems = ledger_check() + references_check()
    problems += [
        f"listing period {pid} sold {sold} of {scu_h} SCU·h"
        for pid, sold, scu_h in _rows("SELECT id, sold_scu_h, scu_h FROM marketplace_listingperiod WHERE sold_scu_h > scu_h LIMIT 20")
    ]
    problems += [
        f"trade {tid} lacks its trade journal"
        for (tid,) in _rows(
            "SELECT t.id FROM exchange_trade t LEFT JOIN exchange_journal j ON j.trade_id = t.id AND j.kind = 'trade' "
            "WHERE j.id IS NULL LIMIT 20")
    ]
    problems += [
        f"trade {tid} of {qty} SCU·h has {allocated} SCU·h allocated"
        for tid, qty, allocated in _rows(
            "SELECT t.id, t.qty, COALESCE(SUM(a.scu_h), 0) FROM exchange_trade t "
            "LEFT JOIN exchange_allocation a ON a.trade_id = t.id GROUP BY t.id HAVING COALESCE(SUM(a.scu_h), 0) <> t.qty LIMIT 20")
    ]
    problems += [
        f"order {oid}: held {held} but {per_lot} × {remaining} remaining"
        for oid, held, per_lot, remaining in _rows(
            "SELECT id, held_fen, hold_per_lot_fen, remaining FROM exchange_order "
            "WHERE side = 'buy' AND status IN ('open', 'partially_filled') AND held_fen <> hold_per_lot_fen * remaining LIMIT 20")
    ]
    # Held funds belong to orders, or to amendments the engine has not applied yet.
    held_rows = _rows(
        "SELECT a.organisation_id, a.balance, COALESCE(o.held, 0) + COALESCE(p.extra, 0) FROM exchange_ledgeraccount a "
        "LEFT JOIN (SELECT organisation_id, SUM(held_fen) AS held FROM exchange_order GROUP BY organisation_id) o "
        "ON o.organisation_id = a.organisation_id "
        "LEFT JOIN (SELECT o.organisation_id, SUM(i.extra_hold_fen) AS extra FROM exchange_inboxcommand i "
        "JOIN exchange_order o ON o.id = i.order_id WHERE i.processed_at IS NULL GROUP BY o.organisation_id) p "
        "ON p.organisation_id = a.organisation_id "
        "WHERE a.kind = 'held' AND a.balance <> COALESCE(o.held, 0) + COALESCE(p.extra, 0) LIMIT 20")
    problems += [f"organisation {org}: held account {balance} but its orders hold {held}" for org, balance, held in held_rows]
    # Settlement's own (escrow against unsettled allocations, payouts, debts, metering).
    return problems + settlement_check()
