from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from exchange import ledger
from exchange.engine import EngineRunner
from exchange.instruments import housekeeping, instrument_halt, instrument_resume, instruments_list
from exchange.models import InboxCommand, Instrument, Order
from exchange.errors import AppError
from tests.conftest import token_client
from tests.exchange.conftest import drain, ensure_catalogue, make_instrument

pytestmark = pytest.mark.django_db


def test_instruments_are_listed_on_a_rolling_horizon(settings, fee_tier):
    from marketplace.models import ComputeClass, Hub

    ensure_catalogue()
    settings.INSTRUMENT_HORIZON_DAYS = 2
    # Early in a China-time morning: later in the day, tomorrow's first period is past its gate.
    china_morning = timezone.localtime().replace(hour=6, minute=0, second=0, microsecond=0)
    created = instruments_list(now=china_morning)
    classes, hubs = ComputeClass.objects.count(), Hub.objects.count()
    assert created >= classes * hubs * 2
    assert instruments_list(now=china_morning) == 0  # idempotent
    instrument = Instrument.objects.order_by("delivery_start").last()
    assert instrument.state == Instrument.State.PRE_OPEN
    assert instrument.gate_closure_at == instrument.delivery_start - timedelta(hours=2)
    local = timezone.localtime(instrument.delivery_start)
    assert (local.hour, local.minute) == (0, 0) and instrument.code.endswith(local.date().isoformat())


def test_due_opening_auction_uncrosses_by_itself(funded_buyer, fee_tier):
    instrument = make_instrument(state=Instrument.State.PRE_OPEN, reference_fen=None)
    runner = EngineRunner()
    runner.load()
    token_client(funded_buyer).post("/api/v1/orders/", {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1}, format="json")
    housekeeping(runner=runner)
    assert not InboxCommand.objects.filter(action="uncross").exists()
    Instrument.objects.filter(pk=instrument.pk).update(auction_ends_at=timezone.now() - timedelta(seconds=1))
    housekeeping(runner=runner)
    housekeeping(runner=runner)
    assert InboxCommand.objects.filter(action="uncross").count() == 1
    drain(runner)
    assert Instrument.objects.get(pk=instrument.pk).state == Instrument.State.CONTINUOUS


def test_gtd_orders_expire_and_release_their_hold(funded_buyer, fee_tier):
    instrument = make_instrument()
    runner = EngineRunner()
    runner.load()
    expires = (timezone.now() + timedelta(seconds=30)).isoformat()
    response = token_client(funded_buyer).post("/api/v1/orders/", {
        "instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 2, "tif": "GTD", "expires_at": expires,
    }, format="json")
    assert response.status_code == 201
    drain(runner)
    Order.objects.filter(pk=response.data["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    runner.load()  # the book reads expiry times from the store
    housekeeping(runner=runner)
    drain(runner)
    assert Order.objects.get(pk=response.data["id"]).status == Order.Status.EXPIRED
    assert ledger.balances(organisation=funded_buyer.organisation)["held"] == 0


def test_halt_and_resume(funded_buyer, fee_tier):
    instrument = make_instrument()
    instrument_halt(instrument=instrument)
    client = token_client(funded_buyer)
    body = {"instrument": instrument.code, "side": "buy", "price": "20.00", "qty": 1}
    assert client.post("/api/v1/orders/", body, format="json").status_code == 409
    resumed = instrument_resume(instrument=instrument)
    assert resumed.state == Instrument.State.AUCTION
    assert client.post("/api/v1/orders/", body, format="json").status_code == 201
    with pytest.raises(AppError):
        instrument_resume(instrument=resumed)


def test_markets_page_lists_instruments_with_prices(client, fee_tier, django_assert_max_num_queries):
    instrument = make_instrument()
    Instrument.objects.filter(pk=instrument.pk).update(last_price_fen=2034)
    with django_assert_max_num_queries(8):
        response = client.get("/markets/")
    assert response.status_code == 200
    assert instrument.code in response.content.decode() and "20.34" in response.content.decode()
    empty = client.get("/markets/?hub=NOPE")
    assert "No instruments match" in empty.content.decode()


def test_market_page_offers_order_entry_only_to_verified_traders(client, funded_buyer, fee_tier):
    instrument = make_instrument()
    anonymous = client.get(f"/markets/{instrument.code}/")
    assert anonymous.status_code == 200 and "Sign in to trade" in anonymous.content.decode()
    client.force_login(funded_buyer.user)
    assert 'id="order-form"' in client.get(f"/markets/{instrument.code}/").content.decode()
    assert client.get("/markets/NOPE/").status_code == 404


def test_demo_top_up_only_in_demo_mode(client, buyer, settings):
    client.force_login(buyer.user)
    settings.DEMO_MODE = False
    assert client.post("/funds/demo-top-up/").status_code == 404
    settings.DEMO_MODE = True
    assert client.post("/funds/demo-top-up/").status_code == 302
    assert ledger.balances(organisation=buyer.organisation)["available"] == 1_000_000_00


def test_check_ledger_command_passes_and_finds_a_broken_balance(funded_buyer):
    call_command("check_ledger")
    from exchange.models import LedgerAccount

    LedgerAccount.objects.filter(organisation=funded_buyer.organisation, kind="available").update(balance=1)
    with pytest.raises(Exception, match="problem"):
        call_command("check_ledger")


def test_invariants_find_a_leg_whose_journal_is_missing(funded_buyer):
    from django.db import connection

    from exchange.invariants import invariants_check
    from exchange.models import LedgerLeg

    assert invariants_check() == []
    leg = LedgerLeg.objects.first()
    with connection.cursor() as cursor:  # the engine's references carry no database constraint
        cursor.execute("UPDATE exchange_ledgerleg SET journal_id = -1 WHERE id = %s", [leg.id])
    assert f"exchange_ledgerleg {leg.id}: journal_id -1 does not exist in exchange_journal" in invariants_check()


def test_invariants_find_an_inbox_command_whose_order_is_missing(funded_buyer, instrument):
    from django.db import connection

    from exchange.invariants import invariants_check

    command = InboxCommand.objects.create(instrument=instrument, action=InboxCommand.Action.CANCEL, order_id=-7,
                                          processed_at=timezone.now())  # order entry's rows: no constraint either
    assert f"exchange_inboxcommand {command.seq}: order_id -7 does not exist in exchange_order" in invariants_check()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE exchange_inboxcommand SET order_id = NULL, instrument_id = -3 WHERE seq = %s",
                       [command.seq])
    assert invariants_check() == [
        f"exchange_inboxcommand {command.seq}: instrument_id -3 does not exist in exchange_instrument"]


def test_demo_top_up_returns_only_to_this_site(client, buyer, settings):
    settings.DEMO_MODE = True
    client.force_login(buyer.user)
    assert client.post("/funds/demo-top-up/", {"next": "https://evil.example/"})["Location"] == "/markets/"
    assert client.post("/funds/demo-top-up/", {"next": "/markets/X/"})["Location"] == "/markets/X/"
