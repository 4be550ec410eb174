"""A busy day in the audit trail: hundreds of thousands of orders and trades export as CSV
without the process holding them (server-side cursors, merged as they come), a time window
reads only its stretch of the tables (tests/supervision/test_audit_plans.py: every branch has its index)."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from supervision.audit import AuditFilters, audit_csv_chunks, audit_page
from supervision.audit.windows import SLACK, id_window
from tests.exchange.conftest import fee_tier, make_instrument  # noqa: F401 (a fixture)
from tests.factories import OrganisationFactory

pytestmark = pytest.mark.django_db

N = 100_000  # orders, and as many trades: a day of the engine benchmark's traffic is of this order
BUSY_ORGANISATIONS = 2


@pytest.fixture
def busy_day(fee_tier):
    """N orders and N trades spread evenly over one day (a little under a second apart), all of
    two busy organisations in one instrument, plus a handful of a quiet one in another."""
    busy, quiet = make_instrument(), make_instrument(days_ahead=4)
    organisations = [OrganisationFactory() for _ in range(BUSY_ORGANISATIONS + 1)]
    start = timezone.now().replace(microsecond=0) - timedelta(days=2)
    step = timedelta(days=1) / N
    a, b, c = (o.id for o in organisations)
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO exchange_order (instrument_id, organisation_id, owner_id, client_order_id, side, type, tif,
                post_only, price_fen, entry_price_fen, qty, remaining, filled, protect_ticks, held_fen,
                hold_per_lot_fen, status, reason, priority_seq, created_at, updated_at)
            SELECT CASE WHEN g %% 1000 = 0 THEN %(quiet)s ELSE %(busy)s END,
                   CASE WHEN g %% 1000 = 0 THEN %(c)s WHEN g %% 2 = 0 THEN %(a)s ELSE %(b)s END, 1, 'o' || g,
                   CASE WHEN g %% 2 = 0 THEN 'buy' ELSE 'sell' END, 'limit', 'GTC', false, 2000 + g %% 50,
                   2000 + g %% 50, 10, 0, 10, 0, 0, 0, 'filled', '', g, %(start)s + g * %(step)s,
                   %(start)s + g * %(step)s
            FROM generate_series(1, %(n)s) g""", {"n": N, "a": a, "b": b, "c": c, "busy": busy.id,
                                                   "quiet": quiet.id, "start": start, "step": step})
        cursor.execute("""
            INSERT INTO exchange_trade (instrument_id, inbox_seq, match_index, price_fen, qty, buy_order_id,
                sell_order_id, buyer_id, seller_id, aggressor, buyer_fee_fen, seller_fee_fen, created_at)
            SELECT CASE WHEN g %% 1000 = 0 THEN %(quiet)s ELSE %(busy)s END, g, 0, 2000 + g %% 50, 10, 2 * g, 2 * g + 1,
                   CASE WHEN g %% 1000 = 0 THEN %(c)s ELSE %(a)s END, %(b)s, 'buy', 1, 1, %(start)s + g * %(step)s
            FROM generate_series(1, %(n)s) g""", {"n": N, "a": a, "b": b, "c": c, "busy": busy.id,
                                                   "quiet": quiet.id, "start": start, "step": step})
        cursor.execute("ANALYZE exchange_order")
        cursor.execute("ANALYZE exchange_trade")
    return {"start": start, "step": step, "quiet": quiet, "quiet_organisation": c}


def _memory() -> dict[str, int]:
    """This process's resident memory now and at its peak, in KiB (Linux)."""
    status = open("/proc/self/status").read()
    return {name: int(re.search(rf"{name}:\s+(\d+)", status).group(1)) for name in ("VmRSS", "VmHWM")}


def test_a_busy_day_exports_without_being_held_in_memory(busy_day):
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak starts again from here (Linux ≥ 4.0)
    before = _memory()["VmRSS"]
    lines = size = 0
    for chunk in audit_csv_chunks(filters=AuditFilters(), language="en"):
        lines += chunk.count(b"\n")
        size += len(chunk)
    grew_kib = _memory()["VmHWM"] - before
    assert lines == 1 + 2 * N
    # The CSV is tens of megabytes, its rows as Python objects hundreds; the export holds a
    # few thousand rows at a time.
    assert size > 25_000_000 and grew_kib < 40_000, (size, grew_kib)


def test_a_window_reads_only_its_stretch(busy_day):
    start = busy_day["start"] + timedelta(hours=12)
    end = start + timedelta(hours=1)
    low, high = id_window("exchange_trade", "id", start=start, end=end)
    per_hour = N // 24
    slack = int(SLACK / busy_day["step"]) + 2
    assert per_hour <= high - low + 1 <= per_hour + 2 * slack
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM exchange_trade WHERE created_at >= %s AND created_at < %s", [start, end])
        in_window = cursor.fetchone()[0]
    filters = AuditFilters(start=start, end=end, kinds=frozenset({"trade"}))
    exported = sum(chunk.count(b"\n") for chunk in audit_csv_chunks(filters=filters, language="en")) - 1
    assert exported == in_window and abs(in_window - N / 24) <= 1
    first = audit_page(filters=filters, limit=10).rows
    assert first[0].at < end and first[-1].at >= start and len(first) == 10
