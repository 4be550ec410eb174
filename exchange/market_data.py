"""Public market data: built by the engine runner once per instrument per batch.

A batch of the engine is the conflation interval: however many orders it carried, each
touched instrument yields one message — the changed depth levels, the batch's trades and
the ticker — with the instrument's next sequence number. The message is serialised once
and PUBLISHed on Redis channel ``md:<instrument id>``; every web process subscribes once
and writes it to its own sockets (exchange/fanout.py). A client that sees a gap in
``seq`` fetches ``/api/v1/instruments/<code>/depth/`` and resumes from its ``seq``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache

import redis
from django.conf import settings
from django.db import connection

from exchange.models import Instrument, Order
from exchange.money import cny

DEPTH_LEVELS = 20
CHANNEL_PREFIX = "md:"


def channel_name(instrument_id: int) -> str:
    return f"{settings.CHANNEL_LAYERS['default']['CONFIG'].get('prefix', 'cx')}:{CHANNEL_PREFIX}{instrument_id}"


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


class DepthTracker:
    """Remembers the last depth published per instrument, to send only changed levels."""

    def __init__(self):
        self._last: dict[int, tuple[dict[int, int], dict[int, int]]] = {}

    def diff(self, instrument_id: int, book) -> tuple[list, list]:
        bids_arr, asks_arr = book.depth(DEPTH_LEVELS)
        bids = {int(level["price"]): int(level["qty"]) for level in bids_arr}
        asks = {int(level["price"]): int(level["qty"]) for level in asks_arr}
        old_bids, old_asks = self._last.get(instrument_id, ({}, {}))
        self._last[instrument_id] = (bids, asks)

        def changes(new: dict, old: dict) -> list:
            out = [(price, qty) for price, qty in new.items() if old.get(price) != qty]
            out += [(price, 0) for price in old if price not in new]
            return sorted(out)

        return changes(bids, old_bids), changes(asks, old_asks)

    def forget(self, instrument_id: int) -> None:
        self._last.pop(instrument_id, None)


def build_update(instrument: Instrument, book, trades, depth: DepthTracker) -> str:
    """Advance the instrument's sequence and market fields; return the serialised message.

    Runs when the runner prepares a batch; the caller saves the instrument fields in the
    batch's transaction.
    """
    tick = instrument.tick_fen
    bid_changes, ask_changes = depth.diff(instrument.id, book)
    instrument.md_seq += 1
    if trades:
        instrument.last_price_fen = trades[-1].price_fen
    best_bid, best_ask = book.best_bid(), book.best_ask()
    instrument.best_bid_fen = best_bid * tick if best_bid is not None else None
    instrument.best_ask_fen = best_ask * tick if best_ask is not None else None
    message = {
        "type": "md.update",
        "instrument": instrument.code,
        "seq": instrument.md_seq,
        "state": instrument.state,
        "bids": [[cny(price * tick), qty] for price, qty in bid_changes],
        "asks": [[cny(price * tick), qty] for price, qty in ask_changes],
        "trades": [
            {"id": t.id, "price": cny(t.price_fen), "qty": t.qty, "aggressor": t.aggressor,
             "time": t.created_at.isoformat() if t.created_at else None}
            for t in trades
        ],
        "ticker": {"last": cny(instrument.last_price_fen), "bid": cny(instrument.best_bid_fen),
                   "ask": cny(instrument.best_ask_fen)},
    }
    return json.dumps(message, separators=(",", ":"))


def stamp(payload: str) -> str:
    """The message with ``published_at`` (ISO 8601, UTC) appended as its last field.

    The message is serialised when the batch is prepared; the stamp is the moment it
    leaves, after the commit, so a client can tell the exchange's delay from its own.
    """
    return f'{payload[:-1]},"published_at":"{datetime.now(UTC).isoformat()}"}}'


def publish_raw(instrument_id: int, payload: str) -> None:
    _redis().publish(channel_name(instrument_id), stamp(payload))


def depth_snapshot(instrument: Instrument) -> dict:
    """Aggregated resting levels and the ``seq`` they belong to.

    One statement, so one snapshot: the runner changes orders and ``md_seq`` in one commit.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT i.md_seq, i.state, o.side, o.price_fen, o.qty, o.orders
               FROM exchange_instrument i
               LEFT JOIN LATERAL (
                   SELECT side, price_fen, SUM(remaining) AS qty, COUNT(*) AS orders FROM exchange_order
                   WHERE instrument_id = i.id AND status IN ('open', 'partially_filled')
                   GROUP BY side, price_fen) o ON true
               WHERE i.id = %s""",
            [instrument.id],
        )
        rows = cursor.fetchall()
    seq, state = rows[0][0], rows[0][1]
    levels = [(s, p, q, c) for _, _, s, p, q, c in rows if s is not None]
    bids = sorted(((p, q, c) for s, p, q, c in levels if s == Order.Side.BUY), reverse=True)[:DEPTH_LEVELS]
    asks = sorted((p, q, c) for s, p, q, c in levels if s == Order.Side.SELL)[:DEPTH_LEVELS]
    return {
        "instrument": instrument.code,
        "seq": seq,
        "state": state,
        "bids": [[cny(p), int(q), c] for p, q, c in bids],
        "asks": [[cny(p), int(q), c] for p, q, c in asks],
    }
