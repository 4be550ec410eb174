"""The runner writes a batch in chunks on a writer thread (settlement.bulk.BulkWriter): the
chunks' journals keep their own legs, and a write that fails rolls the whole batch back."""

import pytest
from django.db import DataError

from accounts.access import actor_from_user
from exchange.models import Allocation, Journal, LedgerLeg
from settlement import runner as settlement_runner
from settlement.models import Settlement
from settlement.services import metering_report
from tests.settlement.conftest import allocation_of, funded

pytestmark = pytest.mark.django_db


def traded_and_metered(market, seller, holder, delivered: list[int]) -> list[Allocation]:
    """One trade of 100 SCU·h per entry of ``delivered`` (from different holders, so each is its
    own allocation), metered as given, the window ended."""
    holders = [holder] + [funded() for _ in delivered[1:]]
    allocations = [allocation_of(market.trade(seller, h, 100, "20.00")) for h in holders]
    market.end_window()
    for allocation, hours in zip(allocations, delivered):
        if hours:
            metering_report(actor=actor_from_user(seller.user), allocation_id=allocation.id, device_hours=str(hours),
                            now=market.during)
    return allocations


def test_every_chunk_writes_its_own_journals_and_legs(market, seller, holder, monkeypatch):
    monkeypatch.setattr(settlement_runner, "CHUNK", 1)  # a chunk per allocation: four hand-overs in one batch
    allocations = traded_and_metered(market, seller, holder, [100, 97, 0, 100])
    assert market.settle() == 4  # and check_ledger's invariants: every journal balances
    for allocation, delivered in zip(allocations, [100, 97, 0, 100]):
        settlement = Settlement.objects.get(pk=allocation.pk)
        assert (settlement.delivered_scu_h, settlement.refunded_scu_h) == (delivered, 100 - delivered)
        kinds = set(Journal.objects.filter(allocation=allocation).values_list("kind", flat=True))
        assert kinds >= {100: {"settlement", "payout"}, 97: {"settlement", "refund", "sla_credit", "payout"},
                         0: {"refund", "sla_credit"}}[delivered]
        escrow_out = -sum(LedgerLeg.objects.filter(journal__allocation=allocation,
                                                   account__kind="escrow").values_list("amount_fen", flat=True))
        assert escrow_out == 100 * 2000  # the escrow's legs are this allocation's, not a neighbour's


def test_a_failed_chunk_rolls_back_the_whole_batch(market, seller, holder, monkeypatch):
    traded_and_metered(market, seller, holder, [100, 100, 100])
    monkeypatch.setattr(settlement_runner, "CHUNK", 1)
    written = []
    write_chunk = settlement_runner.SettlementRunner._write_chunk

    def fail_on_the_second(self, cursor, **kwargs):
        written.append(1)
        if len(written) == 2:
            cursor.execute("SELECT 1 / 0")  # a statement the database refuses, mid-batch
        write_chunk(self, cursor, **kwargs)

    monkeypatch.setattr(settlement_runner.SettlementRunner, "_write_chunk", fail_on_the_second)
    with pytest.raises(DataError):
        market.settle()
    assert not Settlement.objects.exists() and not Allocation.objects.filter(settled_at__isnull=False).exists()
    assert not Journal.objects.exclude(kind__in=["deposit", "trade", "hold", "release"]).exists()
    monkeypatch.setattr(settlement_runner.SettlementRunner, "_write_chunk", write_chunk)
    assert market.settle() == 3
