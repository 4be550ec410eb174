"""Statements: what moved in an organisation's accounts over a period, read from the ledger,
with the records behind it (trades, deliveries, refunds, SLA credits, debts, payouts per
owner) and checks that the two agree.

A period is ``[start, end)`` in aware UTC; a journal belongs to it by ``created_at``. The
settlement runner stamps a settlement's journals, its ``Settlement``, ``Payout`` and
``Debt`` rows with one moment, so the detail tables and the ledger cut the period at the
same place; trades are taken by their trade journal for the same reason.

Balances are never taken from ``LedgerAccount.balance`` here: opening is the sum of the
organisation's legs before ``start``, closing the sum before ``end``, each summed on its
own, so ``opening + movements = closing`` and ``closing + movements since = balance`` are
checks of the ledger rather than arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from exchange.models import Journal, LedgerAccount, LedgerLeg, Trade
from settlement.models import Debt, Payout, Settlement

K = LedgerAccount.Kind
J = Journal.Kind
# An organisation's own accounts (fees and external are the exchange's).
ACCOUNT_KINDS = (K.AVAILABLE, K.HELD, K.ESCROW, K.PAYABLE, K.DEBT, K.RECEIVABLE)
ACCOUNT_LABELS = {
    K.AVAILABLE: _("Available"), K.HELD: _("Held for bids"), K.ESCROW: _("Escrow"), K.PAYABLE: _("Payable"),
    K.DEBT: _("Debt"), K.RECEIVABLE: _("Owed to you"),
}
JOURNAL_LABELS = {
    J.DEPOSIT: _("Deposit"), J.WITHDRAWAL: _("Withdrawal"), J.HOLD: _("Hold for a bid"),
    J.RELEASE: _("Hold released"), J.TRADE: _("Trade"), J.SETTLEMENT: _("Settlement"),
    J.REFUND: _("Refund of undelivered capacity"), J.SLA_CREDIT: _("SLA credit"), J.DEBT: _("Debt recorded"),
    J.DEBT_REPAYMENT: _("Debt repaid"), J.PAYOUT: _("Payout to owners"),
}
DETAIL_LIMIT = 50


@dataclass(frozen=True)
class Period:
    start: datetime  # aware, inclusive
    end: datetime  # aware, exclusive
    first_day: date  # China time, for people
    last_day: date
    preset: str = ""  # day, week, month, or "" for chosen dates


def percent(bp: int) -> str:
    """Basis points as a percentage with two decimals (integer arithmetic)."""
    return f"{bp // 100}.{bp % 100:02d} %"


# --------------------------------------------------------------------------- the ledger


@dataclass
class Movement:
    kind: str
    journals: int
    amounts: dict[str, int]

    @property
    def label(self):
        return JOURNAL_LABELS.get(self.kind, self.kind)

    @property
    def cells(self) -> list[int]:
        return [self.amounts[k] for k in ACCOUNT_KINDS]


@dataclass
class LedgerSummary:
    opening: dict[str, int]
    closing: dict[str, int]
    since: dict[str, int]  # legs at or after the period's end
    balance: dict[str, int]  # LedgerAccount.balance, now
    movements: list[Movement]

    def moved(self, journal_kind: str, account_kind: str) -> int:
        return next((m.amounts[account_kind] for m in self.movements if m.kind == journal_kind), 0)

    @property
    def total(self) -> dict[str, int]:
        return {k: sum(m.amounts[k] for m in self.movements) for k in ACCOUNT_KINDS}

    @property
    def rows(self) -> list[dict]:
        """Per account kind: the balances, and how far each check is off (0 when it holds)."""
        total = self.total
        return [{
            "kind": k, "label": ACCOUNT_LABELS[k], "opening": self.opening[k], "movements": total[k],
            "closing": self.closing[k], "since": self.since[k], "balance": self.balance[k],
            "period_off": self.opening[k] + total[k] - self.closing[k],
            "ledger_off": self.closing[k] + self.since[k] - self.balance[k],
        } for k in ACCOUNT_KINDS]


# One statement, so every figure comes from one snapshot of the ledger even while it is
# written to. Grouping sets give the sums per (account kind, journal kind) and the number
# of journals per journal kind (a journal with legs on two accounts counts once).
LEDGER_SQL = f"""
    WITH legs AS (
        SELECT a.kind AS account_kind, j.kind AS journal_kind, j.id AS journal_id, j.created_at, l.amount_fen
        FROM exchange_ledgerleg l
        JOIN exchange_ledgeraccount a ON a.id = l.account_id
        JOIN exchange_journal j ON j.id = l.journal_id
        WHERE a.organisation_id = %(org)s
    )
    SELECT 'legs', account_kind, journal_kind,
           COALESCE(SUM(amount_fen) FILTER (WHERE created_at < %(start)s), 0)::bigint,
           COALESCE(SUM(amount_fen) FILTER (WHERE created_at >= %(start)s AND created_at < %(end)s), 0)::bigint,
           COALESCE(SUM(amount_fen) FILTER (WHERE created_at < %(end)s), 0)::bigint,
           COALESCE(SUM(amount_fen) FILTER (WHERE created_at >= %(end)s), 0)::bigint,
           COUNT(DISTINCT journal_id) FILTER (WHERE created_at >= %(start)s AND created_at < %(end)s)
    FROM legs GROUP BY GROUPING SETS ((account_kind, journal_kind), (journal_kind))
    UNION ALL
    SELECT 'balance', kind, NULL, balance, 0, 0, 0, 0 FROM exchange_ledgeraccount
    WHERE organisation_id = %(org)s AND kind IN ({", ".join(f"'{k}'" for k in ACCOUNT_KINDS)})
"""


def statement_ledger(*, organisation_id: int, period: Period) -> LedgerSummary:
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_SQL, {"org": organisation_id, "start": period.start, "end": period.end})
        rows = cursor.fetchall()
    zero = dict.fromkeys(ACCOUNT_KINDS, 0)
    opening, closing, since, balance = dict(zero), dict(zero), dict(zero), dict(zero)
    moved: dict[str, dict[str, int]] = {}
    journals: dict[str, int] = {}
    for part, account_kind, journal_kind, before, during, until, after, count in rows:
        if part == "balance":
            balance[account_kind] = before
        elif account_kind is None:
            journals[journal_kind] = count
        elif account_kind in zero:
            opening[account_kind] += before
            closing[account_kind] += until
            since[account_kind] += after
            moved.setdefault(journal_kind, dict(zero))[account_kind] += during
    order = list(JOURNAL_LABELS)
    movements = [Movement(kind, journals.get(kind, 0), amounts) for kind, amounts in moved.items()
                 if journals.get(kind) or any(amounts.values())]
    movements.sort(key=lambda m: order.index(m.kind) if m.kind in order else len(order))
    return LedgerSummary(opening=opening, closing=closing, since=since, balance=balance, movements=movements)


# --------------------------------------------------------------------------- the records behind it


def _sum(expression, condition: Q):
    return Sum(expression, filter=condition, default=0)


def statement_trades(*, organisation_id: int, period: Period, limit: int = DETAIL_LIMIT) -> tuple[list[dict], dict]:
    """Trades the organisation bought or sold whose trade journal falls in the period."""
    org = organisation_id
    trades = Trade.objects.filter(Q(buyer_id=org) | Q(seller_id=org), journals__kind=J.TRADE,
                                  journals__created_at__gte=period.start, journals__created_at__lt=period.end)
    bought, sold = Q(buyer_id=org), Q(seller_id=org)
    value = F("price_fen") * F("qty")
    totals = trades.aggregate(
        bought=Count("id", filter=bought), bought_qty=_sum("qty", bought), bought_value=_sum(value, bought),
        bought_fee=_sum("buyer_fee_fen", bought),
        sold=Count("id", filter=sold), sold_qty=_sum("qty", sold), sold_value=_sum(value, sold),
        sold_fee=_sum("seller_fee_fen", sold),
    )
    totals["fees"] = totals["bought_fee"] + totals["sold_fee"]
    rows = [{
        "at": t.created_at, "id": t.id, "instrument": t.instrument.code, "side": "buy" if t.buyer_id == org else "sell",
        "qty": t.qty, "price": t.price_fen, "value": t.price_fen * t.qty,
        "fee": t.buyer_fee_fen if t.buyer_id == org else t.seller_fee_fen,
    } for t in trades.select_related("instrument").order_by("-id")[:limit]]
    return rows, totals


def statement_settlements(*, organisation_id: int, period: Period, limit: int = DETAIL_LIMIT) -> dict:
    """Allocations settled in the period that the organisation held (delivered to it) or sold."""
    org = organisation_id
    settled = Settlement.objects.filter(settled_at__gte=period.start, settled_at__lt=period.end)
    held, sold = Q(holder_id=org), Q(seller_id=org)
    totals = settled.filter(held | sold).aggregate(
        held=Count("pk", filter=held), held_scu_h=_sum("scu_h", held), held_delivered=_sum("delivered_scu_h", held),
        held_refunded=_sum("refunded_scu_h", held), held_paid=_sum("paid_fen", held), refund=_sum("refund_fen", held),
        credit=_sum("sla_credit_fen", held), credit_owed=_sum("credit_debt_fen", held),
        sold=Count("pk", filter=sold), sold_scu_h=_sum("scu_h", sold), sold_delivered=_sum("delivered_scu_h", sold),
        sold_refunded=_sum("refunded_scu_h", sold), paid=_sum("paid_fen", sold), fee=_sum("fee_fen", sold),
        credit_given=_sum("sla_credit_fen", sold), credit_unpaid=_sum("credit_debt_fen", sold),
        fee_debt=_sum("fee_debt_fen", sold), debt_repaid=_sum("debt_repaid_fen", sold), payout=_sum("payout_fen", sold),
    )
    related = ("trade__instrument", "holder", "seller")
    return {
        "totals": totals,
        "held": list(settled.filter(held).select_related(*related).order_by("-settled_at", "-allocation_id")[:limit]),
        "sold": list(settled.filter(sold).select_related(*related).order_by("-settled_at", "-allocation_id")[:limit]),
    }


def statement_payouts(*, organisation_id: int, period: Period, limit: int = DETAIL_LIMIT) -> dict:
    """What the organisation received as an owner, and — as a seller — what each owner of the
    capacity it sold received."""
    in_period = Q(settlement__settled_at__gte=period.start, settlement__settled_at__lt=period.end)
    received = Payout.objects.filter(in_period, organisation_id=organisation_id)
    # Not capped: one row per owner organisation of the seller's assets (a reseller's own
    # payouts are one row), and the total below must be the whole.
    per_owner = list(Payout.objects.filter(in_period, settlement__seller_id=organisation_id)
                     .values("organisation_id", "organisation__name")
                     .annotate(payouts=Count("id"), amount=Sum("amount_fen"))
                     .order_by("-amount", "organisation__name"))
    rows = received.select_related("settlement__trade__instrument", "settlement__seller").order_by(
        "-settlement__settled_at", "-id")[:limit]
    return {
        "received": [{"at": p.settlement.settled_at, "allocation": p.settlement_id,
                      "instrument": p.settlement.trade.instrument.code, "seller": p.settlement.seller.name,
                      "share": percent(p.share_bp), "amount": p.amount_fen} for p in rows],
        "received_totals": received.aggregate(count=Count("id"), amount=Sum("amount_fen", default=0)),
        "per_owner": per_owner,
        "per_owner_total": sum(row["amount"] for row in per_owner),
    }


def statement_debts(*, organisation_id: int, period: Period, limit: int = DETAIL_LIMIT) -> dict:
    """Debts recorded in the period (owed by the organisation, and owed to it), and those
    outstanding now."""
    org = organisation_id
    owes, owed = Q(debtor_id=org), Q(creditor_id=org)
    recorded = Q(created_at__gte=period.start, created_at__lt=period.end)
    open_ = Q(repaid_fen__lt=F("amount_fen"))
    left = F("amount_fen") - F("repaid_fen")
    debts = Debt.objects.filter(owes | owed)
    totals = debts.aggregate(
        recorded_owes=_sum("amount_fen", owes & recorded), recorded_owed=_sum("amount_fen", owed & recorded),
        outstanding_owes=_sum(left, owes & open_), outstanding_owed=_sum(left, owed & open_),
    )
    outstanding = (debts.filter(open_).select_related("debtor", "creditor", "settlement__trade__instrument")
                   .annotate(outstanding_fen=left).order_by("id"))
    return {"totals": totals, "outstanding": list(outstanding[:limit])}


def statement_funds(*, organisation_id: int, period: Period, limit: int = DETAIL_LIMIT) -> list[dict]:
    """Deposits and withdrawals in the period, newest first."""
    return list(LedgerLeg.objects.filter(
        account__organisation_id=organisation_id, account__kind=K.AVAILABLE,
        journal__kind__in=(J.DEPOSIT, J.WITHDRAWAL),
        journal__created_at__gte=period.start, journal__created_at__lt=period.end,
    ).values("journal_id", "journal__created_at", "journal__kind", "journal__memo", "amount_fen")
        .order_by("-journal__created_at", "-journal_id")[:limit])


# --------------------------------------------------------------------------- the whole


@dataclass
class Check:
    """A total from the records against the same total in the ledger."""

    label: str
    records: int
    ledger: int

    @property
    def ok(self) -> bool:
        return self.records == self.ledger


@dataclass
class Statement:
    organisation: Organisation
    period: Period
    ledger: LedgerSummary
    trades: list[dict]
    trade_totals: dict
    settlements: dict
    payouts: dict
    debts: dict
    funds: list[dict]
    checks: list[Check] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return (all(r["period_off"] == 0 and r["ledger_off"] == 0 for r in self.ledger.rows)
                and all(c.ok for c in self.checks))


def _checks(ledger: LedgerSummary, trades: dict, settlements: dict, payouts: dict, debts: dict) -> list[Check]:
    s, d = settlements, debts
    return [
        Check(_("Escrow for capacity bought"), trades["bought_value"], ledger.moved(J.TRADE, K.ESCROW)),
        Check(_("Fees on capacity sold"), -trades["sold_fee"], ledger.moved(J.TRADE, K.PAYABLE)),
        Check(_("Escrow released at settlement"), -(s["held_paid"] + s["refund"]),
              ledger.moved(J.SETTLEMENT, K.ESCROW) + ledger.moved(J.REFUND, K.ESCROW)),
        Check(_("Refunds"), s["refund"], ledger.moved(J.REFUND, K.AVAILABLE)),
        Check(_("Payouts received as an owner"), payouts["received_totals"]["amount"],
              ledger.moved(J.PAYOUT, K.AVAILABLE)),
        Check(_("Payouts to owners"), -payouts["per_owner_total"], ledger.moved(J.PAYOUT, K.PAYABLE)),
        Check(_("Debts recorded against you"), -d["recorded_owes"], ledger.moved(J.DEBT, K.DEBT)),
        Check(_("Credits recorded as owed to you"), d["recorded_owed"], ledger.moved(J.DEBT, K.RECEIVABLE)),
    ]


@contextmanager
def _one_snapshot():
    """Every read of a statement sees the same committed state. Read one by one, a
    settlement committed between the ledger's sums and the detail tables would show as a
    difference between them on a period that includes now."""
    if connection.in_atomic_block:  # the caller's transaction decides (tests; a caller's own reads)
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def statement_build(*, organisation: Organisation, period: Period, limit: int = DETAIL_LIMIT) -> Statement:
    args = {"organisation_id": organisation.pk, "period": period}
    with _one_snapshot():
        ledger = statement_ledger(**args)
        trades, trade_totals = statement_trades(**args, limit=limit)
        settlements = statement_settlements(**args, limit=limit)
        payouts = statement_payouts(**args, limit=limit)
        debts = statement_debts(**args, limit=limit)
        funds = statement_funds(**args, limit=limit)
    statement = Statement(organisation=organisation, period=period, ledger=ledger, trades=trades,
                          trade_totals=trade_totals, settlements=settlements, payouts=payouts, debts=debts,
                          funds=funds)
    statement.checks = _checks(ledger, trade_totals, settlements["totals"], payouts, debts["totals"])
    return statement


# --------------------------------------------------------------------------- every line, for the CSV


@dataclass
class Line:
    """One journal as it touched the organisation's accounts; ``part`` 0 is the opening balance."""

    part: int
    at: datetime | None
    kind: str
    journal_id: int | None
    trade_id: int | None
    allocation_id: int | None
    order_id: int | None
    memo: str
    qty: int | None
    price_fen: int | None
    bought: bool
    instrument: str
    owners: list | None  # payouts: [[owner name, fen, share bp], ...]
    amounts: dict[str, int | None]


_SUMS = ", ".join(f"SUM(l.amount_fen) FILTER (WHERE a.kind = '{k}')::bigint" for k in ACCOUNT_KINDS)
LINES_SQL = f"""
    SELECT 0, NULL::timestamptz, '', NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, '', NULL::bigint,
           NULL::bigint, NULL::boolean, '', NULL::json, {_SUMS}
    FROM exchange_ledgerleg l
    JOIN exchange_ledgeraccount a ON a.id = l.account_id
    JOIN exchange_journal j ON j.id = l.journal_id
    WHERE a.organisation_id = %(org)s AND j.created_at < %(start)s
    UNION ALL
    SELECT 1, j.created_at, j.kind, j.id, j.trade_id, j.allocation_id, j.order_id, j.memo, t.qty, t.price_fen,
           t.buyer_id = %(org)s, COALESCE(i.code, ''),
           CASE WHEN j.kind = 'payout' THEN (
               SELECT json_agg(json_build_array(o.name, p.amount_fen, p.share_bp) ORDER BY p.amount_fen DESC, o.name)
               FROM settlement_payout p JOIN accounts_organisation o ON o.id = p.organisation_id
               WHERE p.settlement_id = j.allocation_id) END,
           {_SUMS}
    FROM exchange_ledgerleg l
    JOIN exchange_ledgeraccount a ON a.id = l.account_id
    JOIN exchange_journal j ON j.id = l.journal_id
    LEFT JOIN exchange_trade t ON t.id = j.trade_id
    LEFT JOIN exchange_instrument i ON i.id = t.instrument_id
    WHERE a.organisation_id = %(org)s AND j.created_at >= %(start)s AND j.created_at < %(end)s
    GROUP BY j.id, t.id, i.id
    ORDER BY 1, 2, 4
"""


def statement_lines(*, organisation_id: int, period: Period, chunk: int = 2000) -> Iterator[list[Line]]:
    """The opening balance, then every journal of the period in time order, in lists of up to
    ``chunk``. One statement (one snapshot) read through a server-side cursor, so a month of
    a busy trader's holds and releases never sits in memory at once."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(LINES_SQL, {"org": organisation_id, "start": period.start, "end": period.end})
        while rows := cursor.fetchmany(chunk):
            yield [Line(part, at, kind, journal, trade, allocation, order, memo or "", qty, price, bool(bought),
                        code, owners, dict(zip(ACCOUNT_KINDS, sums)))
                   for part, at, kind, journal, trade, allocation, order, memo, qty, price, bought, code, owners, *sums
                   in rows]
