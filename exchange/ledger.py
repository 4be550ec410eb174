"""The double-entry ledger: every movement is a journal whose legs sum to zero.

Balances are the sum of legs; ``LedgerAccount.balance`` caches that sum and is changed
only together with the legs, in the same transaction. ``ledger_check`` proves both.
"""

from __future__ import annotations

from django.db import connection, transaction

from accounts.models import Organisation
from exchange.errors import AppError
from exchange.models import Journal, LedgerAccount, LedgerLeg

Kind = LedgerAccount.Kind


def account_get(*, kind: str, organisation: Organisation | None = None, organisation_id: int | None = None) -> LedgerAccount:
    if organisation is not None:
        organisation_id = organisation.pk
    account, _ = LedgerAccount.objects.get_or_create(organisation_id=organisation_id, kind=kind)
    return account


def journal_post(*, kind: str, legs: list[tuple[LedgerAccount, int]], memo: str = "", order=None, trade=None) -> Journal:
    """Write one journal. Locks the accounts in id order; refuses legs that do not sum to zero."""
    if sum(amount for _, amount in legs) != 0:
        raise ValueError(f"journal legs must sum to zero: {[(a.pk, x) for a, x in legs]}")
    with transaction.atomic():
        ids = sorted({account.pk for account, _ in legs})
        locked = {a.pk: a for a in LedgerAccount.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
        journal = Journal.objects.create(kind=kind, memo=memo, order=order, trade=trade)
        for account, amount in legs:
            current = locked[account.pk]
            current.balance += amount
            if current.kind in (Kind.AVAILABLE, Kind.HELD, Kind.ESCROW) and current.balance < 0:
                raise AppError(
                    "insufficient_funds",
                    f"The {current.get_kind_display().lower()} balance would go below zero.",
                    status_code=422,
                )
        LedgerLeg.objects.bulk_create(LedgerLeg(journal=journal, account_id=a.pk, amount_fen=x) for a, x in legs)
        LedgerAccount.objects.bulk_update(locked.values(), ["balance"])
    return journal


def deposit(*, organisation: Organisation, amount_fen: int, memo: str = "") -> Journal:
    if amount_fen <= 0:
        raise AppError("invalid", "A deposit must be positive.", fields={"amount": "Must be greater than zero."})
    return journal_post(
        kind=Journal.Kind.DEPOSIT,
        legs=[(account_get(organisation=None, kind=Kind.EXTERNAL), -amount_fen),
              (account_get(organisation=organisation, kind=Kind.AVAILABLE), amount_fen)],
        memo=memo,
    )


def withdraw(*, organisation: Organisation, amount_fen: int, memo: str = "") -> Journal:
    if amount_fen <= 0:
        raise AppError("invalid", "A withdrawal must be positive.", fields={"amount": "Must be greater than zero."})
    return journal_post(
        kind=Journal.Kind.WITHDRAWAL,
        legs=[(account_get(organisation=organisation, kind=Kind.AVAILABLE), -amount_fen),
              (account_get(organisation=None, kind=Kind.EXTERNAL), amount_fen)],
        memo=memo,
    )


def hold(*, organisation_id: int, amount_fen: int, order) -> Journal:
    """Move funds from available to held for ``order``; AppError 422 if they are not there."""
    return journal_post(
        kind=Journal.Kind.HOLD,
        legs=[(account_get(organisation_id=organisation_id, kind=Kind.AVAILABLE), -amount_fen),
              (account_get(organisation_id=organisation_id, kind=Kind.HELD), amount_fen)],
        order=order,
    )


def balances(*, organisation: Organisation) -> dict[str, int]:
    out = {kind: 0 for kind in (Kind.AVAILABLE, Kind.HELD, Kind.ESCROW, Kind.PAYABLE)}
    out.update(dict(LedgerAccount.objects.filter(organisation=organisation).values_list("kind", "balance")))
    return out


def ledger_check() -> list[str]:
    """Every problem found: journals that do not balance, cached balances that differ from legs."""
    problems = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(amount_fen), 0) FROM exchange_ledgerleg")
        total = cursor.fetchone()[0]
        if total != 0:
            problems.append(f"all legs sum to {total}, not 0")
        cursor.execute(
            "SELECT journal_id, SUM(amount_fen) FROM exchange_ledgerleg GROUP BY journal_id HAVING SUM(amount_fen) <> 0 LIMIT 20"
        )
        problems += [f"journal {j} sums to {s}" for j, s in cursor.fetchall()]
        cursor.execute(
            """SELECT a.id, a.balance, COALESCE(SUM(l.amount_fen), 0) FROM exchange_ledgeraccount a
               LEFT JOIN exchange_ledgerleg l ON l.account_id = a.id GROUP BY a.id
               HAVING a.balance <> COALESCE(SUM(l.amount_fen), 0) LIMIT 20"""
        )
        problems += [f"account {a} caches {b} but its legs sum to {s}" for a, b, s in cursor.fetchall()]
    return problems
