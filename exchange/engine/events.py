"""What a batch tells the world: market-data updates per instrument (built from the books),
per-organisation event numbering (in the batch's transaction) and publishing after commit."""

from __future__ import annotations

from django.db import connection

from exchange import market_data
from exchange.engine.batch import BatchWrites, TradeRow
from exchange.events import organisation_group, publish_many


class Events:
    """The runner's event stage (a part of ``EngineRunner``)."""

    def _build_market_data(self, writes: BatchWrites) -> None:
        """Each touched instrument's market-data message and the instrument fields to save."""
        by_instrument: dict[int, list[TradeRow]] = {}
        for trade in writes.trade_rows:
            by_instrument.setdefault(trade.instrument_id, []).append(trade)
        for instrument_id in sorted(writes.touched_instruments):
            instrument = self.instruments[instrument_id]
            message = market_data.build_update(instrument, self.books[instrument_id],
                                               by_instrument.get(instrument_id, []), self.depth)
            writes.market_data.append((instrument_id, message))
            writes.instrument_codes[instrument_id] = instrument.code
            writes.instrument_rows[instrument_id] = dict(
                md_seq=instrument.md_seq, last_price_fen=instrument.last_price_fen,
                best_bid_fen=instrument.best_bid_fen, best_ask_fen=instrument.best_ask_fen,
                **writes.instrument_changes.get(instrument_id, {}),
            )

    def _number_private_events(self, writes: BatchWrites) -> None:
        """Give each organisation's events consecutive ``seq`` numbers, kept in the store, so a
        client can tell it missed one (and re-read its orders and fills)."""
        counts: dict[int, int] = {}
        for org_id, _ in writes.private_events:
            counts[org_id] = counts.get(org_id, 0) + 1
        if not counts:
            return
        orgs = sorted(counts)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO exchange_eventsequence AS e (organisation_id, seq) "
                "SELECT * FROM unnest(%s::bigint[], %s::bigint[]) "
                "ON CONFLICT (organisation_id) DO UPDATE SET seq = e.seq + EXCLUDED.seq "
                "RETURNING organisation_id, seq",
                [orgs, [counts[o] for o in orgs]],
            )
            next_seq = {org: last - counts[org] + 1 for org, last in cursor.fetchall()}
        for org_id, event in writes.private_events:
            event["seq"] = next_seq[org_id]
            next_seq[org_id] += 1

    def _publish(self, writes: BatchWrites) -> None:
        # Public market data first: one PUBLISH per instrument, read by every web process.
        for instrument_id, message in writes.market_data:
            market_data.publish_raw(instrument_id, message)
        by_org: dict[int, list[dict]] = {}
        for org_id, event in writes.private_events:
            by_org.setdefault(org_id, []).append(event)
        # One channel-layer message per organisation per batch, all in one event-loop hop.
        publish_many({organisation_group(org_id): events for org_id, events in by_org.items()})
