"""Assertions the settlement scenarios share: journals per allocation, balanced legs, balances."""

from __future__ import annotations

from django.db.models import Count, Sum

from exchange.models import Journal, LedgerAccount, LedgerLeg


def journal_kinds(allocation_id: int) -> list[str]:
    """The kinds of the journals that settled the allocation, in the order written; each one's
    legs (two at least) sum to zero."""
    journals = list(Journal.objects.filter(allocation_id=allocation_id).order_by("id")
                    .annotate(total=Sum("legs__amount_fen"), legs_n=Count("legs"))
                    .values_list("kind", "total", "legs_n"))
    for kind, total, legs_n in journals:
        assert total == 0 and legs_n >= 2, f"a {kind} journal of allocation {allocation_id}: {legs_n} legs sum {total}"
    return [kind for kind, _, _ in journals]


def legs_of(allocation_id: int, kind: str) -> list[tuple[int | None, str, int]]:
    """(organisation, account kind, fen) of the allocation's journals of ``kind``, sorted."""
    return sorted(LedgerLeg.objects.filter(journal__allocation_id=allocation_id, journal__kind=kind)
                  .values_list("account__organisation_id", "account__kind", "amount_fen"), key=str)


def balances(organisation) -> dict[str, int]:
    """Every account of the organisation that is not zero, by kind."""
    return {kind: fen for kind, fen in LedgerAccount.objects.filter(organisation=organisation)
            .exclude(balance=0).values_list("kind", "balance")}


def exchange_fees() -> int:
    return LedgerAccount.objects.filter(organisation=None, kind="fees").values_list("balance", flat=True).first() or 0
