"""Maker and taker fees on real trades: member tiers, the default tier, and call auctions."""

import pytest

from exchange import ledger
from exchange.instruments import instrument_open
from exchange.models import FeeTier, Instrument, LedgerAccount, MemberTier, Trade
from exchange.money import fee_fen
from tests.conftest import token_client
from tests.exchange.conftest import drain, list_capacity, make_instrument

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiers(fee_tier, funded_buyer, listed_provider):
    """The buyer pays 3 bps as maker and 8 as taker, the provider 4 and 9; the default is 2 and 5."""
    buyer_tier = FeeTier.objects.create(code="buyer-tier", name="Buyer tier", maker_bps=3, taker_bps=8)
    seller_tier = FeeTier.objects.create(code="seller-tier", name="Seller tier", maker_bps=4, taker_bps=9)
    MemberTier.objects.create(organisation=funded_buyer.organisation, tier=buyer_tier)
    MemberTier.objects.create(organisation=listed_provider.organisation, tier=seller_tier)
    return buyer_tier, seller_tier


def order(instrument, side, price, qty):
    return {"instrument": instrument.code, "side": side, "price": price, "qty": qty}


def fees_account_balance() -> int:
    return LedgerAccount.objects.get(organisation=None, kind=LedgerAccount.Kind.FEES).balance


def test_each_side_pays_its_own_tier_as_maker_or_taker(instrument, funded_buyer, listed_provider, runner, tiers):
    buyer, seller = token_client(funded_buyer), token_client(listed_provider)
    # The provider makes, the buyer takes.
    assert seller.post("/api/v1/orders/", order(instrument, "sell", "20.00", 100), format="json").status_code == 201
    drain(runner)
    assert buyer.post("/api/v1/orders/", order(instrument, "buy", "20.00", 60), format="json").status_code == 201
    # The bid holds the buyer's own taker fee per lot: 20.00 + ceil(20.00 × 8 bps) = 20.02 (default: 20.01).
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 2002 * 60
    drain(runner)
    first = Trade.objects.get()
    assert first.aggressor == "buy"
    assert (first.buyer_fee_fen, first.seller_fee_fen) == (fee_fen(120000, 8), fee_fen(120000, 4)) == (96, 48)

    # Now the buyer makes and the provider takes.
    assert buyer.post("/api/v1/orders/", order(instrument, "buy", "19.50", 10), format="json").status_code == 201
    drain(runner)
    assert seller.post("/api/v1/orders/", order(instrument, "sell", "19.50", 10), format="json").status_code == 201
    drain(runner)
    second = Trade.objects.exclude(pk=first.pk).get()
    assert second.aggressor == "sell"
    assert (second.buyer_fee_fen, second.seller_fee_fen) == (fee_fen(19500, 3), fee_fen(19500, 9)) == (6, 18)

    assert fees_account_balance() == 96 + 48 + 6 + 18
    assert ledger.balances(organisation=listed_provider.organisation)["payable"] == -(48 + 18)
    assert ledger.balances(organisation=funded_buyer.organisation)["available"] == (
        1_000_000_00 - 120000 - 96 - 19500 - 6)
    from exchange.invariants import invariants_check

    assert invariants_check() == []


def test_an_organisation_without_a_tier_pays_the_default(instrument, funded_buyer, listed_provider, runner, tiers):
    from tests.factories import MembershipFactory

    untiered = MembershipFactory(organisation__kind="buyer")
    ledger.deposit(organisation=untiered.organisation, amount_fen=1_000_000_00)
    token_client(listed_provider).post("/api/v1/orders/", order(instrument, "sell", "20.00", 10), format="json")
    drain(runner)
    token_client(untiered).post("/api/v1/orders/", order(instrument, "buy", "20.00", 10), format="json")
    drain(runner)
    trade = Trade.objects.get()
    assert (trade.buyer_fee_fen, trade.seller_fee_fen) == (fee_fen(20000, 5), fee_fen(20000, 4)) == (10, 8)


def test_auctions_charge_maker_fees_to_both_sides(funded_buyer, listed_provider, tiers):
    from exchange.engine import EngineRunner

    instrument = make_instrument(state=Instrument.State.PRE_OPEN, reference_fen=None, days_ahead=3)
    list_capacity(organisation=listed_provider.organisation, instrument=instrument, scu_h=100)
    runner = EngineRunner()
    runner.load()
    seller, buyer = token_client(listed_provider), token_client(funded_buyer)
    # The ask arrives first and the bid second: in continuous trading the buyer would be the taker.
    assert seller.post("/api/v1/orders/", order(instrument, "sell", "20.00", 30), format="json").status_code == 201
    assert buyer.post("/api/v1/orders/", order(instrument, "buy", "20.00", 30), format="json").status_code == 201
    drain(runner)
    assert not Trade.objects.exists()
    instrument_open(instrument=instrument)
    drain(runner)
    trade = Trade.objects.get()
    assert (trade.aggressor, trade.price_fen, trade.qty) == ("auction", 2000, 30)
    assert (trade.buyer_fee_fen, trade.seller_fee_fen) == (fee_fen(60000, 3), fee_fen(60000, 4)) == (18, 24)
    assert fees_account_balance() == 18 + 24
    balances = ledger.balances(organisation=funded_buyer.organisation)
    # The unused taker-fee allowance of the hold went back too.
    assert (balances["held"], balances["escrow"], balances["available"]) == (0, 60000, 1_000_000_00 - 60000 - 18)
    from exchange.invariants import invariants_check

    assert invariants_check() == []
