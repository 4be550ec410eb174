"""The README's API quick start, run as written against a live exchange (web server and engine
processes on the test database): its shell blocks with bash and curl, its Python client of both
WebSockets, and that client's gap recovery."""

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.models import Membership, Organisation
from exchange import ledger
from exchange.models import Order, Trade
from tests.conftest import token_client
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import MembershipFactory
from tests.processes import child_env, exchange_running

README = Path(settings.BASE_DIR) / "README.md"
README_BASE = "BASE=http://127.0.0.1:8000"


def quick_start_blocks(language: str) -> list[str]:
    text = README.read_text()
    section = text.split("\n## API quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def readme_client(base: str = "http://127.0.0.1:8000") -> dict:
    """The README's Python example as a module, talking to ``base``."""
    (source,) = quick_start_blocks("python")
    namespace = {"__name__": "readme_example"}
    exec(compile(source, f"{README}:python", "exec"), namespace)
    namespace["BASE"] = base
    return namespace


@pytest.fixture
def exchange_url(transactional_db, fee_tier):
    # DEBUG: pages name static files without the manifest `collectstatic` writes (as the browser tests do).
    with exchange_running(SECURE_COOKIES="0", DEBUG="1") as base:
        yield base


@pytest.fixture
def market(transactional_db, fee_tier):
    """The README's demo buyer (its login and password) and a provider with capacity in an AI80
    instrument in Ningxia, the one the quick start picks."""
    instrument = make_instrument(class_code="AI80", hub_code="NX")
    buyer = MembershipFactory(user__email="buyer@lingyun.example", organisation__kind=Organisation.Kind.BUYER,
                              role=Membership.Role.TRADER)
    # The test run hashes with MD5 for speed; the server process checks with its own hashers.
    hasher = PBKDF2PasswordHasher()
    buyer.user.password = hasher.encode("demo-pass-2026", hasher.salt())
    buyer.user.save(update_fields=["password"])
    ledger.deposit(organisation=buyer.organisation, amount_fen=1_000_000_00)
    provider = MembershipFactory(organisation__kind=Organisation.Kind.PROVIDER, role=Membership.Role.PROVIDER_ADMIN)
    list_capacity(organisation=provider.organisation, instrument=instrument, scu_h=500)
    return instrument, buyer, provider


def http(method: str, url: str, token: str, body=None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_readme_quick_start_has_one_python_example_and_one_base():
    assert len(quick_start_blocks("python")) == 1
    assert quick_start_blocks("sh")[0].startswith(README_BASE + "\n")


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="the quick start needs curl and jq")
def test_the_quick_start_runs_as_written(market, exchange_url):
    instrument, buyer, provider = market
    seller = token_client(provider).raw_token
    # Something to trade with: the quick start's IOC bid takes the best ask.
    status, ask = http("POST", f"{exchange_url}/api/v1/orders/", seller,
                       {"instrument": instrument.code, "side": "sell", "price": "21.00", "qty": 10})
    assert status == 201
    wait_for(lambda: Order.objects.get(pk=ask["id"]).status == Order.Status.OPEN)

    script = "\n".join(quick_start_blocks("sh")).replace(README_BASE, f"BASE={exchange_url}", 1)
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120,
                         env=child_env())
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "302"  # signed in
    me = json.loads(lines[1])
    assert (me["email"], me["scopes"]) == ("buyer@lingyun.example", ["read", "trade"])
    assert json.loads(lines[2])["code"] == instrument.code

    # Place, amend (price up, qty cut to 8), cancel, and the late second cancel.
    placed = Order.objects.get(organisation=buyer.organisation, client_order_id__startswith="bot-")
    assert (placed.status, placed.price_fen, placed.remaining, placed.held_fen) == (Order.Status.CANCELLED, 1550, 8, 0)
    amended = json.loads(next(line for line in lines if line.startswith('{"status":')))
    assert (amended["status"], amended["price"], amended["remaining"]) == ("open", "15.50", 8)
    assert '"code":"order_not_live"' in run.stdout and "409" in lines
    # The batch: two placed, the one off the tick refused on its own.
    results = [json.loads(line) for line in lines if line.startswith('{"index":')]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"] and results[1]["code"] == "invalid"
    # The IOC bid took 2 of the ask, and the fills list shows it.
    trade = Trade.objects.get()
    assert (trade.buyer_id, trade.qty, trade.price_fen) == (buyer.organisation_id, 2, 2100)
    fill = json.loads(next(line for line in lines if line.startswith('{"id":') and '"fee"' in line))
    assert (fill["id"], fill["qty"], fill["price"]) == (trade.id, 2, "21.00")
    assert json.loads(next(line for line in lines if line.startswith('{"available"')))["escrow"] == "42.00"
    # The page loop printed the live order of the batch; the retried POST was placed once.
    resting = Order.objects.get(organisation=buyer.organisation, price_fen=1510)
    assert f"{resting.id} {instrument.code} buy 15.10 5" in lines
    assert run.stdout.count("HTTP/1.1 201") == 2 and run.stdout.count("idempotent-replay: true") == 1
    assert Order.objects.filter(organisation=buyer.organisation, price_fen=1500, qty=3).count() == 1


def test_the_python_client_follows_both_streams_and_recovers_from_gaps(market, exchange_url):
    instrument, buyer, provider = market
    client = readme_client(exchange_url)
    buyer_token, seller_token = token_client(buyer).raw_token, token_client(provider).raw_token
    orders = f"{exchange_url}/api/v1/orders/"

    def order(token, side, price, qty, **extra):
        status, body = http("POST", orders, token, {"instrument": instrument.code, "side": side, "price": price,
                                                    "qty": qty, **extra})
        assert status == 201, body
        return body["id"]

    async def until(predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)

    async def bounded_run():
        # stop_after bounds the example: the snapshot and one update, the hello and one event.
        book, account = client["MarketBook"](), client["Account"](buyer_token)

        async def act():
            await until(lambda: book.counts["snapshot"] and account.counts["ignored"])
            await asyncio.to_thread(order, buyer_token, "buy", "19.00", 5)

        await asyncio.wait_for(asyncio.gather(client["follow_market"](instrument.code, book, stop_after=2),
                                              client["follow_events"](account, stop_after=2), act()), 30)
        return book, account

    book, account = asyncio.run(bounded_run())
    assert dict(book.counts) == {"snapshot": 1, "applied": 1} and book.bids == {"19.00": 5}
    assert dict(account.counts) == {"ignored": 1, "applied": 1}
    (bid_id,) = account.live

    async def with_gaps():
        book, account = client["MarketBook"](), client["Account"](buyer_token)
        market = asyncio.create_task(client["follow_market"](instrument.code, book))
        events = asyncio.create_task(client["follow_events"](account))
        try:
            await until(lambda: book.counts["snapshot"] and account.counts["ignored"])
            assert book.bids == {"19.00": 5} and list(account.live) == [bid_id]  # read at connection
            await asyncio.to_thread(order, seller_token, "sell", "21.00", 10)
            small = await asyncio.to_thread(order, buyer_token, "buy", "18.00", 1)
            await until(lambda: book.asks == {"21.00": 10} and book.bids == {"19.00": 5, "18.00": 1}
                        and set(account.live) == {bid_id, small})
            assert book.counts["gap"] == 0 and account.counts["gap"] == 0
            # Each stream misses a message: the next one shows a gap, and the client recovers.
            book.seq -= 1
            account.seq -= 1
            second = await asyncio.to_thread(order, buyer_token, "buy", "19.50", 3)
            await until(lambda: book.counts["snapshot"] == 2 and account.counts["gap"] == 1)
            await until(lambda: book.bids == {"19.00": 5, "18.00": 1, "19.50": 3}
                        and set(account.live) == {bid_id, small, second})
            assert book.counts["gap"] == 1
            # After recovering, both streams go on: a trade reaches the book and the fills.
            await asyncio.to_thread(order, buyer_token, "buy", "21.00", 2, tif="IOC")
            await until(lambda: book.asks == {"21.00": 8} and account.fills and account.fills[0].get("type") == "trade")
            assert (account.fills[0]["qty"], account.fills[0]["price"]) == (2, "21.00")
            return dict(book.counts), dict(account.counts)
        finally:
            market.cancel()
            events.cancel()
            await asyncio.gather(market, events, return_exceptions=True)

    book_counts, account_counts = asyncio.run(asyncio.wait_for(with_gaps(), 60))
    assert book_counts["applied"] >= 3 and account_counts["applied"] >= 2


def test_the_market_book_discards_updates_at_or_below_the_snapshot_after_a_gap():
    book = readme_client()["MarketBook"]()

    def update(seq, bids=(), asks=()):
        return {"type": "md.update", "seq": seq, "bids": list(bids), "asks": list(asks)}

    # An update that came before its snapshot waits, and is dropped if the snapshot has it.
    assert book.on_message(update(10, bids=[["20.00", 5]])) == "pending"
    assert book.on_message({"type": "md.snapshot", "seq": 10, "bids": [["20.00", 5, 1]], "asks": []}) == "snapshot"
    assert (book.seq, book.bids, book.pending) == (10, {"20.00": 5}, [])
    assert book.on_message(update(11, asks=[["21.00", 4]])) == "applied"
    assert book.on_message(update(11, asks=[["21.00", 9]])) == "stale"
    assert book.asks == {"21.00": 4}
    # 12 is missed: 13 is a gap, and everything waits for the next snapshot.
    assert book.on_message(update(13, bids=[["20.00", 0]])) == "gap"
    assert book.seq is None
    assert book.on_message(update(14, bids=[["19.00", 1]])) == "pending"
    assert book.on_message(update(15, asks=[["21.00", 0]])) == "pending"
    # The new snapshot is at 14: 13 and 14 are in it and dropped, 15 is applied on top.
    snapshot = {"type": "md.snapshot", "seq": 14, "bids": [["19.00", 1, 1], ["18.00", 2, 1]], "asks": [["21.00", 4, 1]]}
    assert book.on_message(snapshot) == "snapshot"
    assert (book.seq, book.bids, book.asks, book.pending) == (15, {"19.00": 1, "18.00": 2}, {}, [])
    assert book.on_message(update(16, bids=[["19.00", 3]])) == "applied"
    assert book.bids == {"19.00": 3, "18.00": 2}


def test_the_account_sees_a_gap_in_its_events_and_keeps_applying_after_it():
    account = readme_client()["Account"]("cx_unused")

    def event(seq, status, order_id=1):
        return {"type": "order", "seq": seq, "order_id": order_id, "status": status}

    assert account.on_event({"type": "hello", "organisation": "x"}) == "ignored"
    assert account.on_event(event(7, "open")) == "applied"
    assert account.on_event({"type": "trade", "seq": 8, "order_id": 1, "qty": 2, "price": "20.00"}) == "applied"
    assert list(account.live) == [1] and account.fills[0]["qty"] == 2
    assert account.on_event(event(10, "open", order_id=2)) == "gap"  # 9 is missing
    assert account.on_event(event(11, "filled")) == "applied"
    assert list(account.live) == []
