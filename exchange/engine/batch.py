"""What one batch changes: gathered by ``apply`` and read by ``write``, the hand-off between
the two stages of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class TradeRow(NamedTuple):
    """One trade of a batch as it is written and published (ids come from the sequence)."""

    id: int
    instrument_id: int
    inbox_seq: int
    match_index: int
    price_fen: int
    qty: int
    buy_order_id: int
    sell_order_id: int
    buyer_id: int
    seller_id: int
    aggressor: str
    buyer_fee_fen: int
    seller_fee_fen: int
    created_at: object


@dataclass
class BatchWrites:
    """Everything one batch changes, gathered before it is written in one transaction.

    Gathering (``EngineRunner._prepare``) reads and changes the books; writing
    (``EngineRunner._write``) only reads what is here, so a batch can be written while the
    next one is matched."""

    order_updates: dict[int, dict] = field(default_factory=dict)
    # TradeRow fields without id and created_at, in match order; ``trade_rows`` has them
    # complete (ids from the sequence) once the batch is prepared.
    trades: list[tuple] = field(default_factory=list)
    trade_rows: list[TradeRow] = field(default_factory=list)
    # Legs of the trade journals: (trade index, account id, fen); zero legs are left out.
    trade_legs: list[tuple[int, int, int]] = field(default_factory=list)
    releases: list[tuple[int, int, int]] = field(default_factory=list)  # (order id, org id, fen)
    release_accounts: list[tuple[int, int]] = field(default_factory=list)  # (held, available) per release
    positions: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # (org, instrument) → [held, sold, bought]
    instrument_changes: dict[int, dict] = field(default_factory=dict)
    first_price: dict[int, int] = field(default_factory=dict)  # instrument id → price of its first trade
    private_events: list[tuple[int, dict]] = field(default_factory=list)
    touched_instruments: set[int] = field(default_factory=set)
    market_data: list[tuple[int, str]] = field(default_factory=list)  # (instrument id, message)
    instrument_codes: dict[int, str] = field(default_factory=dict)
    instrument_rows: dict[int, dict] = field(default_factory=dict)  # instrument id → fields to save

    def position(self, organisation_id: int, instrument_id: int) -> list[int]:
        key = (organisation_id, instrument_id)
        position = self.positions.get(key)
        if position is None:
            position = self.positions[key] = [0, 0, 0]
        return position
