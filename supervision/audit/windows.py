"""Time windows of the trading tables as id ranges.

Orders, inbox commands and trades get their ids from a sequence as they are written, and
their times within the same transaction, so ids and times rise together. The audit trail
therefore keeps no index on those tables' times (order entry and the engine would pay for
it on every row): a window [start, end) becomes the id range found by a binary search over
the primary key, widened by ``SLACK`` on both sides, and the rows' own times are checked
exactly within it. A row is missed only if the transaction that wrote it took longer than
``SLACK`` between taking its time and its id; an order-entry or engine transaction takes
milliseconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

SLACK = timedelta(minutes=10)


def _first_at_or_after(cursor, table: str, key: str, moment: datetime, low: int, high: int) -> int:
    """The least id in [low, high] whose row (or the next row after it) was created at or
    after ``moment``; ``high`` when none was. One primary-key lookup per halving."""
    while low < high:
        middle = (low + high) // 2
        cursor.execute(f"SELECT {key}, created_at FROM {table} WHERE {key} >= %s ORDER BY {key} LIMIT 1", [middle])
        row = cursor.fetchone()
        if row is None or row[1] >= moment:
            high = middle
        else:
            low = row[0] + 1
    return low


def id_window(table: str, key: str, *, start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """(first id, last id) within which every row of ``table`` created in [start, end) lies;
    an empty range (1, 0) when the table has none."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min({key}), max({key}) FROM {table}")
        first, last = cursor.fetchone()
        if first is None:
            return 1, 0
        low = first if start is None else _first_at_or_after(cursor, table, key, start - SLACK, first, last + 1)
        high = last if end is None else _first_at_or_after(cursor, table, key, end + SLACK, first, last + 1) - 1
    return low, high


def id_windows(tables: dict[str, str], *, start: datetime | None, end: datetime | None) -> dict:
    if start is None and end is None:
        return {}
    return {table: id_window(table, key, start=start, end=end) for table, key in tables.items()}
