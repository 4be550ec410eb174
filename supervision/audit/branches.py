"""The audit trail's branches: one query per kind of record, read where it is kept.

Nothing is copied into an audit table: each branch selects from the table that holds the
record (orders, the engine's inbox, trades, the regulator's actions, deliveries, metering,
disputes, settlements, payouts) the same columns — when, what, a key, the organisation and
its counterparty, the instrument, the person, and the details as JSON — newest first,
after a keyset position, with the filters as index conditions. Delivery credentials and
endpoints are never selected.

Keys: the trading tables (orders, inbox, trades: thousands of rows a second) are read in
id order, which is the order they were written in; a time window becomes an id range
(``supervision.audit.windows``), so no index on their times has to be kept up by order
entry and the engine. The other tables are read by their time column and id, each indexed.

Each branch picks the plan its filters allow: an organisation's rows through the indexes
that start with the organisation, an instrument's through the instrument's, otherwise the
time or id index alone (``tests/supervision/test_audit_plans.py`` checks with EXPLAIN that
no combination of filters leaves a branch without an index to read by).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COMMAND_KINDS = ("amend", "cancel", "auction", "uncross", "close", "expire")
KINDS = ("order", *COMMAND_KINDS, "trade", "supervision", "delivery_started", "delivery_answered", "metering",
         "dispute_opened", "dispute_resolved", "settlement", "payout")


def _money(sql: str) -> str:
    """``CNY(expression)`` in a branch's SQL: fen in the store, a decimal string of CNY in the details."""
    return re.sub(r"CNY\(((?:[^()]|\([^()]*\))*)\)", r"(\1 / 100.0)::numeric(20, 2)::text", sql)


# Every branch selects these, in this order.
COLUMNS = "at, kind, k_at, k_id, org, other, ins, usr, detail"


@dataclass
class Sql:
    """A query under construction: WHERE conditions and their named parameters."""

    where: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    def add(self, condition: str, **params) -> None:
        self.where.append(condition)
        self.params.update(params)

    def clause(self) -> str:
        return " AND ".join(self.where) or "TRUE"


@dataclass(frozen=True)
class Scope:
    """What one query asks a branch for (see ``supervision.audit.trail``)."""

    organisation_id: int | None
    instrument_id: int | None
    start: object  # aware datetime or None
    end: object
    kinds: frozenset[str]
    windows: dict  # table → (first id, last id) that may hold rows of [start, end)


def _time(sql: Sql, column: str, scope: Scope) -> None:
    if scope.start is not None:
        sql.add(f"{column} >= %(start)s", start=scope.start)
    if scope.end is not None:
        sql.add(f"{column} < %(end)s", end=scope.end)


def _window(sql: Sql, table: str, key: str, created: str, scope: Scope) -> None:
    """Rows of a trading table created in [start, end): an id range for the index, the exact
    times checked on the rows it reads."""
    if scope.start is None and scope.end is None:
        return
    first, last = scope.windows[table]
    sql.add(f"{key} BETWEEN %(lo_{table})s AND %(hi_{table})s", **{f"lo_{table}": first, f"hi_{table}": last})
    _time(sql, created, scope)


def _page(query: str, order: str, limit: int | None, newer: bool = False) -> str:
    """Newest first; or, reading back towards the newest (``newer``), oldest first."""
    order = order.replace("DESC", "ASC") if newer else order
    return f"{query} ORDER BY {order}" + (" LIMIT %(limit)s" if limit else "")


class Branch:
    """One kind of record (or a few from one table). Keys: (None, id) for the trading tables,
    (time, id) for the others (``ByTime``)."""

    name: str
    kinds: tuple[str, ...]

    def wanted(self, scope: Scope) -> bool:
        return bool(scope.kinds.intersection(self.kinds))

    def query(self, scope: Scope, *, after: tuple | None, limit: int | None, newer: bool = False) -> tuple[str, dict]:
        """The branch's rows older than ``after`` (a key), newest first; with ``newer``, its rows
        from ``after`` on towards the newest, oldest first (a page back)."""
        raise NotImplementedError

    @staticmethod
    def _after_id(sql: Sql, key: str, after, newer: bool = False) -> None:
        if after is not None:
            sql.add(f"{key} {'>=' if newer else '<'} %(after_id)s", after_id=after[1])

    @staticmethod
    def _after_time(sql: Sql, at: str, key: str, after, newer: bool = False) -> None:
        if after is not None:
            # The first condition lets the time index bound the scan; the row comparison is exact.
            early, strict = (">=", ">=") if newer else ("<=", "<")
            sql.add(f"{at} {early} %(after_at)s AND ({at}, {key}) {strict} (%(after_at)s, %(after_id)s)",
                    after_at=after[0], after_id=after[1])


# --------------------------------------------------------------------------- trading tables


ORDER_SELECT = _money("""
    SELECT o.created_at AS at, 'order' AS kind, NULL::timestamptz AS k_at, {key} AS k_id,
           o.organisation_id AS org, NULL::bigint AS other, o.instrument_id AS ins, o.user_id AS usr,
           jsonb_build_object('order', o.id, 'client_order_id', o.client_order_id, 'side', o.side, 'type', o.type,
               'tif', o.tif, 'post_only', o.post_only, 'price', CNY(coalesce(o.entry_price_fen, o.price_fen)),
               'qty', o.qty, 'expires_at', o.expires_at, 'status', o.status, 'filled', o.filled,
               'remaining', o.remaining, 'reason', o.reason, 'price_now', CNY(o.price_fen)) AS detail
""")


def _inbox_parts(sql: Sql, select: str, scope: Scope, after, limit: int | None, newer: bool) -> str:
    """An instrument's inbox rows in two parts, each on its own index: processed rows
    (inbox_instrument_idx) and the few still pending (inbox_pending_idx)."""
    Branch._after_id(sql, "i.seq", after, newer)
    _window(sql, "exchange_inboxcommand", "i.seq", "i.created_at", scope)
    parts = [_page(f"{select} WHERE {sql.clause()} AND i.processed_at IS {state}", "i.seq DESC", limit, newer)
             for state in ("NOT NULL", "NULL")]
    return _page(f"SELECT {COLUMNS} FROM (({parts[0]}) UNION ALL ({parts[1]})) AS parts", "k_id DESC", limit, newer)


class Orders(Branch):
    """Orders as entered (with where they stand now)."""

    name, kinds = "order", ("order",)

    def query(self, scope, *, after, limit, newer=False):
        sql = Sql()
        if scope.organisation_id is None and scope.instrument_id is not None:
            # An instrument's orders are its inbox's NEW commands (indexed), not a scan of every order.
            sql.add("i.instrument_id = %(ins)s AND i.action = 'new'", ins=scope.instrument_id)
            select = (ORDER_SELECT.format(key="i.seq")
                      + " FROM exchange_inboxcommand i JOIN exchange_order o ON o.id = i.order_id")
            return _inbox_parts(sql, select, scope, after, limit, newer), sql.params
        if scope.organisation_id is not None:
            sql.add("o.organisation_id = %(org)s", org=scope.organisation_id)  # order (organisation, id)
        if scope.instrument_id is not None:
            sql.add("o.instrument_id = %(ins)s", ins=scope.instrument_id)
        self._after_id(sql, "o.id", after, newer)
        _window(sql, "exchange_order", "o.id", "o.created_at", scope)
        select = ORDER_SELECT.format(key="o.id") + " FROM exchange_order o"
        return _page(f"{select} WHERE {sql.clause()}", "o.id DESC", limit, newer), sql.params


COMMAND_SELECT = _money("""
    SELECT i.created_at AS at, i.action::text AS kind, NULL::timestamptz AS k_at, i.seq AS k_id,
           o.organisation_id AS org, NULL::bigint AS other, i.instrument_id AS ins, NULL::bigint AS usr,
           jsonb_build_object('seq', i.seq, 'order', i.order_id, 'client_order_id', o.client_order_id,
               'price', CNY(i.new_price_fen), 'qty', i.new_qty, 'processed_at', i.processed_at) AS detail
    FROM exchange_inboxcommand i LEFT JOIN exchange_order o ON o.id = i.order_id
""")


class Commands(Branch):
    """The engine's inbox beyond new orders: amendments, cancels, and each instrument's call
    auctions (a halt or a resumption starts one), uncrosses, gate closure and expiries."""

    name, kinds = "command", COMMAND_KINDS

    def query(self, scope, *, after, limit, newer=False):
        sql = Sql()
        sql.add("i.action <> 'new'")  # the predicate of inbox_change_idx and inbox_change_order_idx
        wanted = [kind for kind in COMMAND_KINDS if kind in scope.kinds]
        if len(wanted) < len(COMMAND_KINDS):
            sql.add("i.action = ANY(%(actions)s)", actions=wanted)
        if scope.organisation_id is not None:
            # Only orders' commands have an organisation. The planner joins from the organisation's
            # orders (order (organisation, id), then inbox_change_order_idx) or from the newest
            # changes (inbox_change_idx, then each order by its key), whichever reads less.
            sql.add("o.organisation_id = %(org)s", org=scope.organisation_id)
        if scope.instrument_id is not None:
            sql.add("i.instrument_id = %(ins)s", ins=scope.instrument_id)
            if scope.organisation_id is None:
                return _inbox_parts(sql, COMMAND_SELECT, scope, after, limit, newer), sql.params
        self._after_id(sql, "i.seq", after, newer)
        _window(sql, "exchange_inboxcommand", "i.seq", "i.created_at", scope)
        return _page(f"{COMMAND_SELECT} WHERE {sql.clause()}", "i.seq DESC", limit, newer), sql.params


TRADE_SELECT = _money("""
    SELECT t.created_at AS at, 'trade' AS kind, NULL::timestamptz AS k_at, t.id AS k_id, t.buyer_id AS org,
           t.seller_id AS other, t.instrument_id AS ins, NULL::bigint AS usr,
           jsonb_build_object('trade', t.id, 'seq', t.inbox_seq, 'match_index', t.match_index,
               'price', CNY(t.price_fen), 'qty', t.qty, 'buy_order', t.buy_order_id, 'sell_order', t.sell_order_id,
               'aggressor', t.aggressor, 'buyer_fee', CNY(t.buyer_fee_fen),
               'seller_fee', CNY(t.seller_fee_fen)) AS detail
    FROM exchange_trade t
""")


class Trades(Branch):
    """Trades; the organisation is the buyer, the counterparty the seller."""

    name, kinds = "trade", ("trade",)

    def query(self, scope, *, after, limit, newer=False):
        sql = Sql()
        if scope.instrument_id is not None:
            sql.add("t.instrument_id = %(ins)s", ins=scope.instrument_id)
        self._after_id(sql, "t.id", after, newer)
        _window(sql, "exchange_trade", "t.id", "t.created_at", scope)
        if scope.organisation_id is None:
            return _page(f"{TRADE_SELECT} WHERE {sql.clause()}", "t.id DESC", limit, newer), sql.params
        # Bought and sold, each on its own index (trade_buyer_idx, trade_seller_idx), merged.
        sql.params["org"] = scope.organisation_id
        parts = [_page(f"{TRADE_SELECT} WHERE t.{side}_id = %(org)s AND {sql.clause()}", "t.id DESC", limit, newer)
                 for side in ("buyer", "seller")]
        return _page(f"SELECT {COLUMNS} FROM (({parts[0]}) UNION ALL ({parts[1]})) AS parts", "k_id DESC", limit,
                     newer), sql.params


# --------------------------------------------------------------------------- keyed by time

# Allocations an organisation held or delivered, and those of an instrument's trades: every
# step on an index (allocation holder, listing period provider, trade instrument).
ALLOCATIONS_OF_ORGANISATION = """(
    SELECT id FROM exchange_allocation WHERE holder_id = %(org)s
    UNION ALL SELECT a.id FROM marketplace_listingperiod lp JOIN exchange_allocation a ON a.listing_period_id = lp.id
              WHERE lp.provider_id = %(org)s)"""
ALLOCATIONS_OF_INSTRUMENT = """(
    SELECT a.id FROM exchange_trade t JOIN exchange_allocation a ON a.trade_id = t.id
    WHERE t.instrument_id = %(ins)s)"""

ALLOCATION_JOINS = """
    JOIN exchange_allocation a ON a.id = {alias}.allocation_id
    JOIN marketplace_listingperiod lp ON lp.id = a.listing_period_id
    JOIN exchange_trade t ON t.id = a.trade_id
"""


class ByTime(Branch):
    """A branch read by (time, id), newest first, with its allocation-based filters."""

    at: str
    key: str
    select: str
    allocation = ""  # the allocation column the organisation and instrument filters use

    def filters(self, sql: Sql, scope: Scope) -> None:
        column = self.allocation
        if scope.organisation_id is not None:
            sql.add(f"{column} IN {ALLOCATIONS_OF_ORGANISATION}", org=scope.organisation_id)
        if scope.instrument_id is not None:
            sql.add(f"{column} IN {ALLOCATIONS_OF_INSTRUMENT}", ins=scope.instrument_id)

    def query(self, scope, *, after, limit, newer=False):
        sql = Sql()
        sql.add(f"{self.at} IS NOT NULL")
        self.filters(sql, scope)
        _time(sql, self.at, scope)
        self._after_time(sql, self.at, self.key, after, newer)
        order = f"{self.at} DESC, {self.key} DESC"
        return _page(f"{self.select} WHERE {sql.clause()}", order, limit, newer), sql.params


class SupervisionActions(ByTime):
    """Every regulator action (KYC decisions, halts, …), with who took it and why."""

    name, kinds = "supervision", ("supervision",)
    at, key = "s.created_at", "s.id"
    select = """
        SELECT s.created_at AS at, 'supervision' AS kind, s.created_at AS k_at, s.id AS k_id, s.organisation_id AS org,
               s.regulator_id AS other, s.instrument_id AS ins, s.actor_id AS usr,
               jsonb_build_object('action', s.action, 'reason', s.reason, 'details', s.details) AS detail
        FROM supervision_supervisionaction s
    """

    def filters(self, sql, scope):
        if scope.organisation_id is not None:
            # The organisation acted on, or the regulator that acted: (organisation, created_at), regulator.
            sql.add("(s.organisation_id = %(org)s OR s.regulator_id = %(org)s)", org=scope.organisation_id)
        if scope.instrument_id is not None:
            sql.add("s.instrument_id = %(ins)s", ins=scope.instrument_id)


def _allocation_select(kind: str, at: str, key: str, org: str, other: str, usr: str, detail: str, source: str,
                       alias: str) -> str:
    return (f"SELECT {at} AS at, '{kind}' AS kind, {at} AS k_at, {key} AS k_id, {org} AS org, {other} AS other, "
            f"t.instrument_id AS ins, {usr} AS usr, jsonb_build_object({detail}) AS detail "
            f"FROM {source} {alias} {ALLOCATION_JOINS.format(alias=alias)}")


class DeliveriesStarted(ByTime):
    name, kinds = "delivery_started", ("delivery_started",)
    at, key, allocation = "d.started_at", "d.allocation_id", "d.allocation_id"
    select = _allocation_select(
        "delivery_started", "d.started_at", "d.allocation_id", "lp.provider_id", "a.holder_id", "d.started_by_id",
        "'allocation', a.id, 'trade', a.trade_id, 'scu_h', a.scu_h, 'state', d.state", "settlement_delivery", "d")


class DeliveriesAnswered(ByTime):
    name, kinds = "delivery_answered", ("delivery_answered",)
    at, key, allocation = "d.answered_at", "d.allocation_id", "d.allocation_id"
    select = _allocation_select(
        "delivery_answered", "d.answered_at", "d.allocation_id", "a.holder_id", "lp.provider_id", "d.answered_by_id",
        "'allocation', a.id, 'trade', a.trade_id, 'state', d.state, 'note', d.holder_note",
        "settlement_delivery", "d")


class Metering(ByTime):
    name, kinds = "metering", ("metering",)
    at, key, allocation = "m.created_at", "m.id", "m.allocation_id"
    select = _allocation_select(
        "metering", "m.created_at", "m.id", "lp.provider_id", "a.holder_id", "m.reported_by_id",
        "'report', m.id, 'allocation', a.id, 'device_hours', m.device_hours::text, 'source', m.source, 'note', m.note",
        "settlement_meterreport", "m")


class DisputesOpened(ByTime):
    name, kinds = "dispute_opened", ("dispute_opened",)
    at, key, allocation = "x.opened_at", "x.id", "x.allocation_id"
    select = _allocation_select(
        "dispute_opened", "x.opened_at", "x.id", "a.holder_id", "lp.provider_id", "x.opened_by_id",
        "'dispute', x.id, 'allocation', a.id, 'reason', x.reason, 'state', x.state", "settlement_dispute", "x")


class DisputesResolved(ByTime):
    name, kinds = "dispute_resolved", ("dispute_resolved",)
    at, key, allocation = "x.resolved_at", "x.id", "x.allocation_id"
    select = _allocation_select(
        "dispute_resolved", "x.resolved_at", "x.id", "a.holder_id", "lp.provider_id", "x.resolved_by_id",
        "'dispute', x.id, 'allocation', a.id, 'state', x.state, 'delivered_device_hours', "
        "x.delivered_device_hours::text, 'note', x.resolution_note", "settlement_dispute", "x")


SETTLEMENT_DETAIL = ("'allocation', s.allocation_id, 'trade', s.trade_id, 'price', CNY(s.price_fen), 'scu_h', s.scu_h, "
                     "'delivered_scu_h', s.delivered_scu_h, 'refunded_scu_h', s.refunded_scu_h, "
                     "'paid', CNY(s.paid_fen), 'refund', CNY(s.refund_fen), 'fee', CNY(s.fee_fen), "
                     "'sla_credit', CNY(s.sla_credit_fen), 'payout', CNY(s.payout_fen)")


class Settlements(ByTime):
    """Settlements; the organisation is the seller, the counterparty the holder."""

    name, kinds = "settlement", ("settlement",)
    at, key, allocation = "s.settled_at", "s.allocation_id", "s.allocation_id"
    select = _money(f"""
        SELECT s.settled_at AS at, 'settlement' AS kind, s.settled_at AS k_at, s.allocation_id AS k_id,
               s.seller_id AS org, s.holder_id AS other, t.instrument_id AS ins, NULL::bigint AS usr,
               jsonb_build_object({SETTLEMENT_DETAIL}) AS detail
        FROM settlement_settlement s JOIN exchange_trade t ON t.id = s.trade_id
    """)

    def filters(self, sql, scope):
        if scope.organisation_id is not None:
            # settlement (holder, settled_at) and (seller, settled_at)
            sql.add("(s.holder_id = %(org)s OR s.seller_id = %(org)s)", org=scope.organisation_id)
        if scope.instrument_id is not None:
            sql.add(f"s.allocation_id IN {ALLOCATIONS_OF_INSTRUMENT}", ins=scope.instrument_id)


class Payouts(ByTime):
    """Each owner's part of a settlement's proceeds, at the settlement's time."""

    name, kinds = "payout", ("payout",)
    at, key = "s.settled_at", "p.id"
    select = _money("""
        SELECT s.settled_at AS at, 'payout' AS kind, s.settled_at AS k_at, p.id AS k_id, p.organisation_id AS org,
               s.seller_id AS other, t.instrument_id AS ins, NULL::bigint AS usr,
               jsonb_build_object('allocation', s.allocation_id, 'trade', s.trade_id, 'share_bp', p.share_bp,
                   'amount', CNY(p.amount_fen)) AS detail
        FROM settlement_payout p JOIN settlement_settlement s ON s.allocation_id = p.settlement_id
             JOIN exchange_trade t ON t.id = s.trade_id
    """)

    def filters(self, sql, scope):
        if scope.organisation_id is not None:
            # Paid to it (payout (organisation, settlement)), or out of its proceeds (settlement (seller, settled_at)).
            sql.add("""p.id IN (SELECT id FROM settlement_payout WHERE organisation_id = %(org)s
                                UNION ALL SELECT sp.id FROM settlement_settlement ss
                                          JOIN settlement_payout sp ON sp.settlement_id = ss.allocation_id
                                          WHERE ss.seller_id = %(org)s)""", org=scope.organisation_id)
        if scope.instrument_id is not None:
            sql.add(f"s.allocation_id IN {ALLOCATIONS_OF_INSTRUMENT}", ins=scope.instrument_id)


BRANCHES: tuple[Branch, ...] = (
    Orders(), Commands(), Trades(), SupervisionActions(), DeliveriesStarted(), DeliveriesAnswered(), Metering(),
    DisputesOpened(), DisputesResolved(), Settlements(), Payouts(),
)
# The trading tables and their keys, for the time windows.
WINDOWED = {"exchange_order": "id", "exchange_inboxcommand": "seq", "exchange_trade": "id"}
