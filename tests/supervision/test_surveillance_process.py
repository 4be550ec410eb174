"""``run_surveillance`` as a process: a second one stands by, takes over when the first is
killed, and between them every command and trade is read once and every ring flagged once."""

import signal
import subprocess
import time

import pytest

from exchange.models import InboxCommand, Trade
from supervision.models import Alert, SurveillanceCursor
from supervision.surveillance.scenario_market import REFERENCE_FEN as REF
from supervision.surveillance.scenario_market import ScenarioMarket, engine_for_scenario
from tests.processes import start, wait_for_other_sessions_to_end

pytestmark = pytest.mark.django_db(transaction=True)


def ring(m, name: str) -> None:
    a, b, c = m.provider(f"{name} A"), m.buyer(f"{name} B"), m.buyer(f"{name} C")
    for step, (seller, buyer) in enumerate(((a, b), (b, c), (c, a))):
        m.place(seller, m.instrument, "sell", REF + step, 10)
        m.place(buyer, m.instrument, "buy", REF + step, 10)
        m.settle()


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.1)


def lock_held() -> bool:
    from django.db import connection

    from supervision.surveillance.runner import ADVISORY_LOCK

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
                       "AND objid = %s", list(ADVISORY_LOCK))
        return cursor.fetchone()[0] == 1


def rings() -> int:
    return Alert.objects.filter(rule__code="wash_circular").count()


def test_a_killed_process_is_replaced_by_the_one_standing_by_and_nothing_is_read_twice():
    engine = engine_for_scenario()
    first = start("manage.py", "run_surveillance", stderr=subprocess.DEVNULL)
    standby = None
    try:
        m = ScenarioMarket(engine=engine)
        m.instrument = m.day()
        wait_for(lambda: lock_held() or first.poll() is not None, "the first process to take the lock")
        standby = start("manage.py", "run_surveillance", stderr=subprocess.DEVNULL)
        ring(m, "Ring 1")
        wait_for(lambda: rings() == 1, "the first ring's alert")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        ring(m, "Ring 2")
        wait_for(lambda: rings() == 2, "the second ring's alert, from the process that stood by")
        processed = InboxCommand.objects.filter(processed_at__isnull=False).count()
        wait_for(lambda: SurveillanceCursor.objects.get().commands == processed, "the cursor to catch up")
        cursor = SurveillanceCursor.objects.get()
        assert (cursor.commands, cursor.trades) == (processed, Trade.objects.count()) == (processed, 6)
        assert rings() == 2 and standby.poll() is None
    finally:
        engine.close()
        for process in (first, standby):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(15)
        wait_for_other_sessions_to_end()
