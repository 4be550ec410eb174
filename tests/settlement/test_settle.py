import pytest

from accounts.access import actor_from_user
from exchange.models import Journal, LedgerAccount
from settlement.models import Settlement
from settlement.services import metering_report
from tests.settlement.conftest import allocation_of, balance

pytestmark = pytest.mark.django_db

K = LedgerAccount.Kind


def test_full_delivery_pays_the_provider_and_empties_escrow(market, seller, holder):
    trade = market.trade(seller, holder, 100, "20.00")
    allocation = allocation_of(trade)
    assert balance(holder.organisation, K.ESCROW) == 100 * 2000
    market.end_window()
    metering_report(actor=actor_from_user(seller.user), allocation_id=allocation.id, device_hours="100",
                    now=market.during)
    assert market.settle() == 1
    settlement = Settlement.objects.get()
    assert (settlement.delivered_scu_h, settlement.refunded_scu_h, settlement.sla_credit_fen) == (100, 0, 0)
    assert balance(holder.organisation, K.ESCROW) == 0
    assert settlement.payout_fen == 200_000 - trade.seller_fee_fen
    assert balance(seller.organisation, K.AVAILABLE) == settlement.payout_fen
    assert balance(seller.organisation, K.PAYABLE) == 0
    assert set(Journal.objects.filter(allocation=allocation).values_list("kind", flat=True)) == {"settlement", "payout"}
    assert market.settle() == 0  # once


def test_delivery_metering_and_a_dispute_through_the_services(market, seller, holder, regulator):
    from settlement.models import Delivery, Dispute
    from settlement.selectors import delivery_credentials
    from settlement.services import delivery_answer, delivery_start, dispute_open, dispute_resolve

    trade = market.trade(seller, holder, 100, "20.00")
    allocation = allocation_of(trade)
    provider_actor, holder_actor = actor_from_user(seller.user), actor_from_user(holder.user)
    delivery_start(actor=provider_actor, allocation_id=allocation.id, endpoint="ssh://gpu.example:22",
                   credentials="user: alice / key: s3cret")
    assert "s3cret" not in Delivery.objects.get().credentials_encrypted
    assert delivery_credentials(actor=holder_actor, allocation=allocation) == "user: alice / key: s3cret"
    assert delivery_credentials(actor=provider_actor, allocation=allocation) is None
    delivery_answer(actor=holder_actor, allocation_id=allocation.id, working=True)
    market.end_window()
    report = metering_report(actor=provider_actor, allocation_id=allocation.id, device_hours="99.5",
                             now=market.during)
    dispute = dispute_open(actor=holder_actor, allocation_id=allocation.id, reason="Half the nodes were down",
                           report_id=report.id)
    assert market.settle() == 0  # waits for the outcome
    dispute_resolve(actor=actor_from_user(regulator.user), dispute_id=dispute.id, outcome="adjust",
                    delivered_device_hours="50", note="Monitoring shows 50 device-hours")
    assert Dispute.objects.get().state == Dispute.State.ADJUSTED
    assert market.settle() == 1
    settlement = Settlement.objects.get()
    assert (settlement.delivered_scu_h, settlement.refunded_scu_h, settlement.sla_credit_bp) == (50, 50, 10000)
