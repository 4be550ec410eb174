"""What a batch tells the world: market-data updates per instrument (built from the books),
per-organisation event numbering (in the batch's transaction) and publishing after commit."""

from __future__ import annotations

from exchange import market_data
from exchange.engine.batch import BatchWrites, TradeRow
from exchange.events import private_events_number, private_events_publish


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

    @staticmethod
    def _number_private_events(writes: BatchWrites) -> None:
        private_events_number(writes.private_events)

    def _publish(self, writes: BatchWrites) -> None:
        # Public market data first: one PUBLISH per instrument, read by every web process.
        for instrument_id, message in writes.market_data:
            market_data.publish_raw(instrument_id, message)
        private_events_publish(writes.private_events)
