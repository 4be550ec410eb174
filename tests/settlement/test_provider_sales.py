"""The provider's desk: what its sales settled to and each owner's proceeds, on the dashboard."""

import pytest

from marketplace.models import ComputeAsset
from marketplace.services.assets import asset_owners_set
from settlement.models import Payout, Settlement
from settlement.selectors import provider_sales
from tests.factories import OrganisationFactory
from tests.settlement.test_owners import deliver_in_full

pytestmark = pytest.mark.django_db


def test_sales_add_up_to_the_settlements_and_owners_to_the_payouts(market, seller, holder):
    assert provider_sales(organisation_id=seller.organisation_id)["totals"]["count"] == 0
    partner = OrganisationFactory(kind="provider", name="Partner Compute")
    asset = ComputeAsset.objects.get(provider=seller.organisation)
    asset_owners_set(asset=asset, owners=[(seller.organisation, 6000), (partner, 4000)])
    for qty in (7, 3):
        deliver_in_full(market, seller, market.trade(seller, holder, qty, "20.00"))
    assert market.settle() == 2

    sales = provider_sales(organisation_id=seller.organisation_id)
    settled = Settlement.objects.filter(seller=seller.organisation)
    assert sales["totals"]["count"] == 2 and sales["totals"]["scu_h"] == 10 and sales["totals"]["delivered"] == 10
    assert sales["totals"]["paid"] == sum(s.paid_fen for s in settled) == 20_000
    assert sales["totals"]["payout"] == sum(p.amount_fen for p in Payout.objects.all())
    by_owner = {o["organisation__name"]: (o["settlements"], o["amount"]) for o in sales["owners"]}
    assert by_owner[partner.name][0] == 2 and by_owner[seller.organisation.name][0] == 2
    assert sum(amount for _, amount in by_owner.values()) == sales["totals"]["payout"]
    # Someone else's desk shows none of it.
    assert provider_sales(organisation_id=holder.organisation_id)["owners"] == []


def test_the_dashboard_shows_asks_sales_and_owners(client, market, seller, holder):
    from tests.settlement.conftest import place

    deliver_in_full(market, seller, market.trade(seller, holder, 4, "20.00"))
    market.settle()
    place(seller, market.instrument, "sell", "21.00", 6)
    client.force_login(seller.user)
    page = client.get("/capacity/provider/").content.decode()
    assert 'id="asks"' in page and "21.00" in page and market.instrument.code in page
    assert "80.00 CNY" in page  # 4 × 20.00 paid by the buyer
    assert seller.organisation.name in page.split('id="sales"')[1]
