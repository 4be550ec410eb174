"""Replay: an instrument's day, traded through the real engine, reruns through a fresh book
to the same fills; a stored trade changed afterwards is named as the first difference."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from exchange.models import Trade
from exchange.money import cny
from supervision.replay import Replay, replay_instrument
from tests.conftest import token_client
from tests.supervision.trading import trade_a_day

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def day():
    return trade_a_day()


def _corrupt(trade: Trade, **values) -> None:
    sets = ", ".join(f"{name} = %s" for name in values)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE exchange_trade SET {sets} WHERE id = %s", [*values.values(), trade.id])


def test_the_day_replays_to_the_same_fills(day):
    trades = list(Trade.objects.filter(instrument=day.instrument).order_by("id"))
    assert len(trades) >= 8 and {"auction", "buy"} <= {t.aggressor for t in trades}
    report = replay_instrument(instrument=day.instrument)
    assert report.exact, (report.first_difference, report.error)
    assert report.trades == len(trades) and report.started_as == "pre_open"
    assert report.commands > 20


def test_a_changed_price_is_the_first_difference(day):
    trades = list(Trade.objects.filter(instrument=day.instrument).order_by("id"))
    target = trades[len(trades) // 2]
    _corrupt(target, price_fen=target.price_fen + 7)
    report = replay_instrument(instrument=day.instrument)
    difference = report.first_difference
    assert not report.exact and difference.seq == target.inbox_seq
    assert difference.fields == ["price_fen"]
    assert (difference.expected["price_fen"], difference.got["price_fen"]) == (target.price_fen + 7, target.price_fen)
    assert report.trades == len(trades) // 2  # the trades before it agreed


def test_a_changed_quantity_is_named_by_the_command(day, capsys):
    call_command("replay", day.instrument.code)
    assert "Fills reproduce exactly" in capsys.readouterr().out
    target = Trade.objects.filter(instrument=day.instrument).order_by("id").last()
    _corrupt(target, qty=target.qty + 1)
    with pytest.raises(CommandError, match=rf"command seq {target.inbox_seq}.*qty: expected {target.qty + 1}, "
                                           rf"got {target.qty}"):
        call_command("replay", day.instrument.code)


def test_a_stored_trade_no_command_made_is_a_difference(day):
    first = Trade.objects.filter(instrument=day.instrument).order_by("id").first()
    _corrupt(first, match_index=first.match_index + 50)
    difference = replay_instrument(instrument=day.instrument).first_difference
    assert difference.seq == first.inbox_seq and difference.got is not None


def test_progress_is_reported_as_the_replay_goes(day):
    replay = Replay(day.instrument, chunk=5)
    steps = list(replay.run())
    total = steps[-1][1]
    assert len(steps) > 3 and steps[-1][0] == total and replay.report.exact
    assert [done for done, _ in steps] == sorted(done for done, _ in steps)


def test_an_unknown_instrument_is_refused():
    with pytest.raises(CommandError, match="No instrument"):
        call_command("replay", "NOPE.XX.2000-01-01")


def test_the_console_shows_progress_then_the_verdict(day, regulator):
    client = Client()
    client.force_login(regulator.user)
    response = client.get("/supervision/replay/", {"instrument": day.instrument.code})
    assert response.status_code == 200 and response.streaming
    page = b"".join(response.streaming_content).decode()
    assert "replayProgress(" in page and "Fills reproduce exactly" in page and page.rstrip().endswith("</html>")
    target = Trade.objects.filter(instrument=day.instrument).order_by("id")[3]
    _corrupt(target, price_fen=target.price_fen - 5)
    page = b"".join(client.get("/supervision/replay/", {"instrument": day.instrument.code}).streaming_content).decode()
    assert f"First difference at command seq {target.inbox_seq}" in page
    assert f"<td>{cny(target.price_fen - 5)}</td><td>{cny(target.price_fen)}</td>" in page
    assert client.get("/supervision/replay/", {"instrument": "NOPE"}).status_code == 404
    assert client.get("/supervision/replay/").status_code == 200


def test_the_api_names_the_first_difference(day, regulator):
    api = token_client(regulator, scopes=("read",))
    url = f"/api/v1/supervision/replay/{day.instrument.code}/"
    answer = api.get(url).json()
    assert answer["exact"] and answer["first_difference"] is None and answer["trades"] == Trade.objects.count()
    target = Trade.objects.filter(instrument=day.instrument).order_by("id").last()
    _corrupt(target, qty=target.qty + 2)
    difference = api.get(url).json()["first_difference"]
    assert difference["seq"] == target.inbox_seq and difference["fields"] == ["qty"]
    assert (difference["expected"]["qty"], difference["got"]["qty"]) == (target.qty + 2, target.qty)
    assert difference["got"]["price"] == cny(target.price_fen)
    assert api.get("/api/v1/supervision/replay/NOPE.XX/").status_code == 404


@pytest.mark.asyncio
async def test_the_page_streams_through_the_asgi_server(day, regulator, asgi_closed):
    """Under ASGI each piece is read on the request's thread, where the replay's transaction
    and server-side cursors live (supervision.streaming)."""
    from asgiref.sync import sync_to_async
    from channels.testing import HttpCommunicator
    from django.conf import settings

    from exchange.asgi import application

    client = Client()
    await sync_to_async(client.force_login)(regulator.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    communicator = HttpCommunicator(application, "GET", f"/supervision/replay/?instrument={day.instrument.code}",
                                    headers=[(b"cookie", cookie), (b"host", b"testserver")])
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=60)
    pieces = []
    while True:  # a streamed answer: several body messages, the last without more_body
        message = await communicator.receive_output(timeout=60)
        pieces.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    page = b"".join(pieces).decode()
    assert start["status"] == 200 and len(pieces) > 3
    assert "replayProgress(" in page and "Fills reproduce exactly" in page
