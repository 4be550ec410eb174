"""Reading the inbox in sequence, each processed command once, whatever order commands commit
and are processed in (another connection plays a slow order entry)."""

import time

import psycopg
import pytest
from django.db import connection

from exchange.db import conninfo
from exchange.models import InboxCommand
from supervision.surveillance import feed
from supervision.surveillance.feed import GAP_GRACE_S, Cursor
from tests.exchange.conftest import make_instrument

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instrument():
    return make_instrument()


@pytest.fixture
def other():
    """A second connection, as another process's order entry would hold one."""
    with psycopg.connect(conninfo()) as conn:
        yield conn


def command(instrument, *, processed=True) -> int:
    row = InboxCommand.objects.create(instrument=instrument, action=InboxCommand.Action.EXPIRE)
    if processed:
        processed_now(row.seq)
    return row.seq


def processed_now(*seqs) -> None:
    with connection.cursor() as c:
        c.execute("UPDATE exchange_inboxcommand SET processed_at = now() WHERE seq = ANY(%s)", [list(seqs)])


def read_all(cursor: Cursor, **kwargs) -> tuple[list[int], Cursor]:
    commands, after = feed.read(cursor, limit=1000, **kwargs)
    return [c.seq for c in commands], after


def test_each_processed_command_is_read_once_in_order(instrument):
    seqs = [command(instrument) for _ in range(5)]
    read, cursor = read_all(Cursor())
    assert read == seqs and cursor.seq == seqs[-1] and cursor.waiting == [] and cursor.commands == 5
    assert read_all(cursor)[0] == []
    later = command(instrument)
    assert read_all(cursor)[0] == [later]


def test_a_command_the_engine_has_not_processed_yet_waits_and_is_read_when_it_is(instrument):
    first = command(instrument, processed=False)
    second = command(instrument)
    third = command(instrument, processed=False)  # after the last processed one: not passed yet
    read, cursor = read_all(Cursor())
    assert read == [second] and cursor.waiting == [first] and cursor.seq == second
    processed_now(first, third)
    read, cursor = read_all(cursor)
    assert read == [first, third] and cursor.waiting == []
    assert read_all(cursor)[0] == []


def test_a_command_committed_after_a_later_one_was_processed_is_still_read(instrument, other):
    # The other connection takes its number first and commits last.
    row = other.execute("INSERT INTO exchange_inboxcommand (instrument_id, action, extra_hold_fen, created_at) "
                        "VALUES (%s, 'expire', 0, now()) RETURNING seq", [instrument.id]).fetchone()
    slow = row[0]
    fast = command(instrument)
    read, cursor = read_all(Cursor())
    assert read == [fast] and any(lo <= slow <= hi for lo, hi, *_ in cursor.gaps)
    # Long after the grace, the gap stays while the transaction that may fill it runs.
    read, cursor = read_all(cursor, now=time.time() + 10 * GAP_GRACE_S)
    assert read == [] and any(lo <= slow <= hi for lo, hi, *_ in cursor.gaps)
    other.commit()
    read, cursor = read_all(cursor)
    assert read == [] and cursor.waiting == [slow]  # in the inbox now; the engine has yet to process it
    processed_now(slow)
    read, cursor = read_all(cursor)
    assert read == [slow] and cursor.waiting == [] and cursor.commands == 2
    assert not any(lo <= slow <= hi for lo, hi, *_ in cursor.gaps)


def test_a_number_whose_entry_rolled_back_is_forgotten_after_the_grace(instrument, other):
    lost = other.execute("INSERT INTO exchange_inboxcommand (instrument_id, action, extra_hold_fen, created_at) "
                         "VALUES (%s, 'expire', 0, now()) RETURNING seq", [instrument.id]).fetchone()[0]
    other.rollback()
    fast = command(instrument)
    read, cursor = read_all(Cursor())
    assert read == [fast] and any(lo <= lost <= hi for lo, hi, *_ in cursor.gaps)
    assert any(lo <= lost <= hi for lo, hi, *_ in read_all(cursor)[1].gaps)  # within the grace: kept
    read, cursor = read_all(cursor, now=time.time() + GAP_GRACE_S + 1)
    assert read == [] and cursor.gaps == []


def test_the_cursor_survives_in_the_database(instrument):
    seqs = [command(instrument) for _ in range(3)]
    _, cursor = read_all(Cursor())
    feed.cursor_save(cursor)
    assert feed.cursor_load() == cursor
    assert read_all(feed.cursor_load())[0] == []
    assert seqs[-1] == feed.cursor_load().seq
