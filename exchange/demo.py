"""Demo trading set-up: fee tiers, funds for the demo buyers, the first instruments.

Idempotent: tiers are created once, funds are deposited only to accounts that never had
a deposit, instruments already listed are left alone.
"""

from __future__ import annotations

from accounts.models import Organisation
from exchange import ledger
from exchange.instruments import instruments_list
from exchange.models import FeeTier, Journal, LedgerAccount, MemberTier

DEMO_DEPOSIT_FEN = 20_000_000_00  # 20 million CNY per demo buyer


def seed(organisations: dict[str, Organisation]) -> None:
    FeeTier.objects.get_or_create(code="standard", defaults={"name": "Standard", "maker_bps": 2, "taker_bps": 5, "is_default": True})
    maker, _ = FeeTier.objects.get_or_create(code="market-maker", defaults={"name": "Market maker", "maker_bps": 0, "taker_bps": 3})
    for organisation in organisations.values():
        if organisation.kind in (Organisation.Kind.BUYER, Organisation.Kind.PROVIDER):
            funded = Journal.objects.filter(
                kind=Journal.Kind.DEPOSIT, legs__account__organisation=organisation,
                legs__account__kind=LedgerAccount.Kind.AVAILABLE,
            ).exists()
            if not funded:
                ledger.deposit(organisation=organisation, amount_fen=DEMO_DEPOSIT_FEN, memo="demo funds")
    if provider := organisations.get("Gui'an Cloud Valley Data Centre"):
        MemberTier.objects.get_or_create(organisation=provider, defaults={"tier": maker})
    instruments_list()
