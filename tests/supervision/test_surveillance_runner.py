"""The surveillance process: exactly once across failures and restarts, its windows warmed up
after a restart, one runner at a time, alerts that grow while open, rules the regulator
switches off or retunes, and alerts live on the console stream.

Transactional: the runner commits each pass as the process does.
"""

import threading
import time

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections, transaction

from accounts.models import Organisation
from exchange.models import InboxCommand, Trade
from exchange import services
from exchange.asgi import application
from exchange.money import cny
from supervision.models import Alert, Rule, SurveillanceCursor
from supervision.surveillance import feed
from supervision.surveillance.book import Books
from supervision.surveillance.runner import SurveillanceRunner
from supervision.surveillance.scenario_market import REFERENCE_FEN as REF
from supervision.surveillance.scenario_market import ScenarioMarket, engine_for_scenario
from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def market():
    engine = engine_for_scenario()
    m = ScenarioMarket(engine=engine)
    m.instrument = m.day()
    yield m
    engine.close()


def trade(m, seller, buyer, qty=10, price=REF):
    m.place(seller, m.instrument, "sell", price, qty)
    m.place(buyer, m.instrument, "buy", price, qty)
    m.settle()


def regroup(*parties):
    """The regulator learns these organisations share one beneficial owner."""
    owner = parties[0].organisation.beneficial_owner_id
    Organisation.objects.filter(pk__in=[p.id for p in parties]).update(beneficial_owner_id=owner)


@pytest.fixture
def related(market):
    """A provider and a buyer, unrelated when they trade twice, found related afterwards."""
    seller, buyer = market.provider("Seller"), market.buyer("Buyer")
    trade(market, seller, buyer)
    trade(market, seller, buyer)
    regroup(seller, buyer)
    return seller, buyer


def wash_alerts():
    return list(Alert.objects.filter(rule__code="wash_same_owner"))


def test_a_failed_pass_writes_nothing_and_a_restart_reads_each_event_once(related, monkeypatch):
    runner = SurveillanceRunner(batch_size=1)

    def fails(cursor, name="inbox"):
        raise RuntimeError("the process died before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(feed, "cursor_save", fails)
        with pytest.raises(RuntimeError):
            runner.drain()
    assert wash_alerts() == [] and not SurveillanceCursor.objects.exists()
    assert runner.loaded is False  # its memory is rebuilt before the next pass

    runner.drain()
    (alert,) = wash_alerts()
    assert alert.evidence["figures"]["trades"] == 2 and len(alert.evidence["trades"]) == 2
    assert alert.evidence["findings"] == 2 and set(alert.organisation_ids) == {p.id for p in related}
    cursor = SurveillanceCursor.objects.get()
    assert cursor.trades == 2

    SurveillanceRunner().drain()  # a restart: nothing read twice
    assert wash_alerts() == [alert] and Alert.objects.get().evidence == alert.evidence
    assert SurveillanceCursor.objects.get().trades == 2


def test_an_alert_under_review_takes_no_more_evidence_the_next_finding_opens_another(market):
    seller, buyer = market.provider("Seller"), market.buyer("Buyer")
    trade(market, seller, buyer)
    regroup(seller, buyer)
    SurveillanceRunner().drain()
    (first,) = wash_alerts()
    Alert.objects.filter(pk=first.pk).update(state=Alert.State.UNDER_REVIEW)
    other_seller, other_buyer = market.provider("Seller 2"), market.buyer("Buyer 2")
    trade(market, other_seller, other_buyer)
    regroup(seller, other_seller, other_buyer)  # now one owner for all four
    SurveillanceRunner().drain()
    second = Alert.objects.exclude(pk=first.pk).get()
    assert second.key == first.key and second.state == Alert.State.OPEN
    assert Alert.objects.get(pk=first.pk).evidence == first.evidence


def test_rules_switched_off_or_retuned_by_the_regulator(market):
    seller, buyer = market.provider("Seller"), market.buyer("Buyer")
    runner = SurveillanceRunner()
    runner.load()
    Rule.objects.filter(code="wash_same_owner").update(enabled=False)
    trade(market, seller, buyer)
    regroup(seller, buyer)
    runner.drain()
    assert wash_alerts() == []
    Rule.objects.filter(code="wash_same_owner").update(enabled=True, parameters={"min_qty": 11})
    seller2, buyer2 = market.provider("Seller 2"), market.buyer("Buyer 2")
    trade(market, seller2, buyer2, qty=10)
    regroup(seller2, buyer2)
    runner.drain()
    assert wash_alerts() == []
    Rule.objects.filter(code="wash_same_owner").update(parameters={"min_qty": 10})
    seller3, buyer3 = market.provider("Seller 3"), market.buyer("Buyer 3")
    trade(market, seller3, buyer3, qty=10)
    regroup(seller3, buyer3)
    runner.drain()
    (alert,) = wash_alerts()
    assert set(alert.organisation_ids) == {seller3.id, buyer3.id}


def spoof_cycle(m, spoofer, clean_buyer):
    bid = m.place(spoofer, m.instrument, "buy", REF - 40, 80)
    m.settle()
    m.place(clean_buyer, m.instrument, "buy", REF - 5, 5)
    m.place(spoofer, m.instrument, "sell", REF - 5, 5, tif="IOC")
    m.settle()
    m.cancel(spoofer, bid)
    m.settle()
    return bid


def test_a_pattern_that_straddles_a_restart_is_still_seen(market):
    """Two spoofing cycles before a restart and one after: the restarted runner replays the
    window it had read, so the third cycle completes the pattern."""
    spoofer, clean = market.provider("Spoofer"), market.buyer("Clean")
    market.place(clean, market.instrument, "buy", REF - 10, 5)  # the touch
    bids = [spoof_cycle(market, spoofer, clean) for _ in range(2)]
    SurveillanceRunner().drain()
    assert not Alert.objects.filter(rule__code="spoofing").exists()
    bids.append(spoof_cycle(market, spoofer, clean))
    SurveillanceRunner().drain()  # a new process: its windows come from replaying what was read
    (alert,) = Alert.objects.filter(rule__code="spoofing")
    assert set(alert.evidence["orders"]) == {b.id for b in bids} and alert.evidence["figures"]["orders"] == 3


def test_a_new_order_enters_the_copy_at_the_price_it_came_with_not_its_amended_one(market):
    buyer, other = market.buyer("Buyer"), market.buyer("Other")
    market.place(other, market.instrument, "buy", REF - 10, 5)  # the touch
    bid = market.place(buyer, market.instrument, "buy", REF - 10, 80)
    market.settle()
    services.order_amend(actor=buyer.actor, order_id=bid.id, data={"price": cny(REF - 50)})
    market.settle()
    commands, _ = feed.read(feed.Cursor(), limit=100)
    new, amend = [c for c in commands if c.order_id == bid.id]
    books = Books()
    books.apply_new([c for c in commands if c.action == "new" and c.order_id != bid.id][0])
    entered = books.apply_new(new).orders[bid.id]
    assert (entered.price_fen, entered.away_bps) == (REF - 10, 0)  # at the touch when it came
    order, given_up = books.apply_amend(amend)
    assert order.price_fen == REF - 50 and given_up == 0


def test_after_a_restart_a_command_the_cursor_had_not_read_is_read_once_not_replayed_as_well(market):
    """An order entry commits late: the first runner passed its number as a gap. The engine
    processes it before the restart; the new runner warms up on what the cursor had read
    only, and its first pass reads the late command, so its trade is in the rules' memory once."""
    seller, late_buyer, other = market.provider("Seller"), market.buyer("Late Buyer"), market.buyer("Other")
    elsewhere = market.day()
    ask = market.place(seller, market.instrument, "sell", REF, 10)
    market.settle()
    entered, release, late = threading.Event(), threading.Event(), []

    def slow_entry():
        try:
            with transaction.atomic():
                order = market.place(late_buyer, market.instrument, "buy", REF, 10)
                late.append(InboxCommand.objects.get(order_id=order.id).seq)
                entered.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_entry)
    thread.start()
    try:
        assert entered.wait(30)
        for step in range(3):  # later numbers, committed and processed first
            market.place(other, elsewhere, "buy", REF - 100 - step, 1)
        market.settle()
        first = SurveillanceRunner()
        first.drain()
        gaps = SurveillanceCursor.objects.get().gaps
        assert any(lo <= late[0] <= hi for lo, hi, *_ in gaps) and not Trade.objects.exists()
    finally:
        release.set()
        thread.join(30)
    market.settle()  # the engine processes the late order: it trades with the ask
    (trade,) = Trade.objects.all()
    del first  # the process stops; another starts
    restarted = SurveillanceRunner()
    restarted.drain()
    assert [t.id for t in restarted.ctx.recent_trades[market.instrument.id]] == [trade.id]
    assert [t.trade.id for t in restarted.ctx.owner_trades[(seller.organisation.beneficial_owner_id,
                                                            market.instrument.id)]] == [trade.id]
    cursor = SurveillanceCursor.objects.get()
    assert not any(lo <= late[0] <= hi for lo, hi, *_ in cursor.gaps) and cursor.trades == 1
    assert cursor.commands == InboxCommand.objects.filter(processed_at__isnull=False).count()


def test_one_runner_at_a_time():
    first = SurveillanceRunner()
    assert first.acquire(wait=False)
    answers = []

    def second():
        try:
            runner = SurveillanceRunner()
            answers.append(runner.acquire(wait=False))
            first_released.wait(10)
            answers.append(runner.acquire(wait=False))
            runner.release()
        finally:
            connections.close_all()

    first_released = threading.Event()
    thread = threading.Thread(target=second)
    thread.start()
    deadline = time.monotonic() + 10
    while not answers and time.monotonic() < deadline:
        time.sleep(0.01)
    first.release()
    first_released.set()
    thread.join(10)
    assert answers == [False, True]


@pytest_asyncio.fixture
async def closed_connections():
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.asyncio
async def test_alerts_reach_open_consoles_once_committed(market, regulator, closed_connections):
    seller, buyer = await sync_to_async(market.provider)("Seller"), await sync_to_async(market.buyer)("Buyer")
    token = (await sync_to_async(token_client)(regulator, scopes=("read",))).raw_token
    ws = WebsocketCommunicator(application, f"/ws/supervision/?token={token}", headers=[(b"origin", b"http://127.0.0.1")])
    assert (await ws.connect())[0] and (await ws.receive_json_from(timeout=3))["type"] == "hello"

    def play():
        trade(market, seller, buyer)
        regroup(seller, buyer)
        SurveillanceRunner().drain()
        return Alert.objects.get().id

    alert_id = await sync_to_async(play, thread_sensitive=False)()
    event = await ws.receive_json_from(timeout=5)
    assert event["type"] == "alert" and event["id"] == alert_id and event["rule"] == "wash_same_owner"
    assert event["severity"] == "high" and set(event["organisation_ids"]) == {seller.id, buyer.id}
    await ws.disconnect()
