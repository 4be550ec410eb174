"""Every write of a batch, in the transaction that marks its commands processed: trades,
ledger journals and legs, orders, allocations, instrument fields, balances, capacity
positions."""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from exchange.allocation import allocate
from exchange.db import pg_array, pg_text_array
from exchange.engine.batch import BatchWrites, TradeRow
from exchange.engine.inbox import PendingCommand
from exchange.models import CapacityPosition, Instrument, Journal
from exchange.money import cny


class InboxConflict(RuntimeError):
    """A batch's commands were processed by another writer meanwhile (the shard lock lost)."""


class Write:
    """The runner's writing stage (a part of ``EngineRunner``); reads only a ``BatchWrites``."""

    def _write_batch_alone(self, commands: list[PendingCommand], writes: BatchWrites) -> None:
        """The writer thread's part: one batch in its own transaction."""
        with transaction.atomic():
            self._write_batch(commands, writes)

    def _write_batch(self, commands: list[PendingCommand], writes: BatchWrites) -> None:
        """Write a prepared batch and mark its commands processed (in the caller's transaction);
        publish its events once that commits."""
        self._write(writes)
        self._mark_processed(commands)
        # robust: a publishing failure (Redis away) is logged, never taken for the batch's
        # own — it is committed; subscribers see the gap in seq and re-read.
        transaction.on_commit(lambda: self._publish(writes), robust=True)

    @staticmethod
    def _mark_processed(commands: list[PendingCommand]) -> None:
        with connection.cursor() as cursor:
            # "processed_at IS NULL" lets it use the pending index (else: a scan of the whole inbox).
            cursor.execute("UPDATE exchange_inboxcommand SET processed_at = now() "
                           "WHERE processed_at IS NULL AND seq = ANY(%s::bigint[])",
                           [pg_array([c.seq for c in commands])])
            if cursor.rowcount != len(commands):
                # Only a second writer for the shard could have: roll back rather than apply twice.
                raise InboxConflict(f"{len(commands) - cursor.rowcount} of the batch's {len(commands)} inbox "
                                    "commands were processed meanwhile by another writer")

    def _write(self, writes: BatchWrites) -> None:
        """Write a prepared batch (reads only ``writes``: see BatchWrites)."""
        now = timezone.now()
        trades = writes.trade_rows
        self._insert_trades(trades)
        # Journals: one per trade (in trade order), then one per release.
        journal_ids = self._next_ids("exchange_journal", len(trades) + len(writes.releases))
        deltas: dict[int, int] = {}
        if journal_ids:
            trade_journal = Journal.Kind.TRADE
            release_journal = Journal.Kind.RELEASE
            legs = [(journal_ids[trade], account, amount) for trade, account, amount in writes.trade_legs]
            for journal_id, (_, _, amount), (held, available) in zip(journal_ids[len(trades):], writes.releases,
                                                                      writes.release_accounts):
                legs.append((journal_id, held, -amount))
                legs.append((journal_id, available, amount))
            for _, account, amount in legs:
                deltas[account] = deltas.get(account, 0) + amount
            with connection.cursor() as cursor:
                with cursor.copy("COPY exchange_journal (id, kind, order_id, trade_id, memo, created_at) "
                                 "FROM STDIN") as copy:
                    for journal_id, trade in zip(journal_ids, trades):
                        copy.write_row((journal_id, trade_journal, None, trade.id, "", now))
                    for journal_id, (order_id, _, _) in zip(journal_ids[len(trades):], writes.releases):
                        copy.write_row((journal_id, release_journal, order_id, None, "", now))
                with cursor.copy("COPY exchange_ledgerleg (journal_id, account_id, amount_fen) FROM STDIN") as copy:
                    for leg in legs:
                        copy.write_row(leg)
        self._write_orders(writes)
        if trades:
            allocate(trades, writes.instrument_codes)
        for instrument_id, fields in sorted(writes.instrument_rows.items()):
            if fields.get("state") not in (None, Instrument.State.CLOSED):
                # A halt written since the batch read the states wins over the state the batch
                # reached (an auction, or its end); the next batch reads it. Gate closure wins
                # over a halt.
                fields = dict(fields)
                moved = {name: fields.pop(name) for name in ("state", "auction_ends_at") if name in fields}
                Instrument.objects.filter(pk=instrument_id).exclude(state=Instrument.State.HALTED).update(**moved)
            Instrument.objects.filter(pk=instrument_id).update(**fields)
        self._number_private_events(writes)
        # Last, just before the commit: the rows order entry locks too (accounts, then capacity
        # positions, each in id order, as cx_place_orders takes them), so order entry waits
        # only for the end of a batch and never in a cycle.
        self._write_balances(deltas)
        self._write_positions(writes)

    def _next_ids(self, table: str, count: int) -> list[int]:
        if not count:
            return []
        with connection.cursor() as cursor:
            sequence = self._sequences.get(table)
            if sequence is None:
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
                sequence = self._sequences[table] = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count])
            return [row[0] for row in cursor.fetchall()]

    @staticmethod
    def _insert_trades(rows: list[TradeRow]) -> None:
        """COPY the batch's trades (their ids came from the sequence when the batch was prepared,
        so the journals and allocations can refer to them)."""
        if not rows:
            return
        with connection.cursor() as cursor:
            with cursor.copy("COPY exchange_trade (id, instrument_id, inbox_seq, match_index, price_fen, qty, "
                             "buy_order_id, sell_order_id, buyer_id, seller_id, aggressor, buyer_fee_fen, "
                             "seller_fee_fen, created_at) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def _write_balances(self, deltas: dict[int, int]) -> None:
        if not deltas:
            return
        ids = sorted(deltas)
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM exchange_ledgeraccount WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids])
            cursor.execute(
                "UPDATE exchange_ledgeraccount a SET balance = a.balance + d.delta "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) WHERE a.id = d.id",
                [ids, [deltas[i] for i in ids]],
            )

    def _write_positions(self, writes: BatchWrites) -> None:
        if not writes.positions:
            return
        keys = sorted(writes.positions)
        CapacityPosition.objects.bulk_create(
            [CapacityPosition(organisation_id=o, instrument_id=i) for o, i in keys], ignore_conflicts=True
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM exchange_capacityposition c JOIN unnest(%s::bigint[], %s::bigint[]) AS k(o, i) "
                "ON c.organisation_id = k.o AND c.instrument_id = k.i ORDER BY c.id FOR UPDATE OF c",
                [[o for o, _ in keys], [i for _, i in keys]],
            )
            cursor.execute(
                "UPDATE exchange_capacityposition c SET held = c.held + d.h, sold = c.sold + d.s, bought = c.bought + d.b "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) AS d(o, i, h, s, b) "
                "WHERE c.organisation_id = d.o AND c.instrument_id = d.i",
                [[o for o, _ in keys], [i for _, i in keys]]
                + [[writes.positions[k][n] for k in keys] for n in range(3)],
            )

    # One statement for the whole batch (bulk_update's CASE per field per row was most of
    # the engine's time); it returns what the order events need.
    ORDER_UPDATE_SQL = """
        UPDATE exchange_order o SET
            status = COALESCE(d.status, o.status), reason = COALESCE(d.reason, o.reason),
            remaining = COALESCE(d.remaining, o.remaining), filled = o.filled + d.filled_delta,
            held_fen = COALESCE(d.held_fen, o.held_fen),
            hold_per_lot_fen = COALESCE(d.hold_per_lot_fen, o.hold_per_lot_fen),
            priority_seq = COALESCE(d.priority_seq, o.priority_seq), price_fen = COALESCE(d.price_fen, o.price_fen),
            updated_at = now()
        FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
                    %s::bigint[], %s::bigint[])
             AS d(id, status, reason, remaining, filled_delta, held_fen, hold_per_lot_fen, priority_seq, price_fen)
        -- The ids again, as an index condition: joined on d.id alone, the planner hashed the
        -- whole orders table for every batch.
        WHERE o.id = d.id AND o.id = ANY(%s::bigint[])
        RETURNING o.id, o.organisation_id, o.client_order_id, o.instrument_id, o.side, o.status, o.price_fen,
                  o.qty, o.filled, o.remaining, o.reason
    """

    ORDER_COLUMNS = ("status", "reason", "remaining", "filled_delta", "held_fen", "hold_per_lot_fen",
                     "priority_seq", "price_fen")

    def _write_orders(self, writes: BatchWrites) -> None:
        if not writes.order_updates:
            return
        ids = sorted(writes.order_updates)
        columns = [
            [writes.order_updates[oid].get(name, 0 if name == "filled_delta" else None) for oid in ids]
            for name in self.ORDER_COLUMNS
        ]
        with connection.cursor() as cursor:
            id_array = pg_array(ids)
            cursor.execute(self.ORDER_UPDATE_SQL, [id_array, pg_text_array(columns[0]), pg_text_array(columns[1]),
                                                   *map(pg_array, columns[2:]), id_array])
            rows = sorted(cursor.fetchall())
        for oid, org, client_id, instrument_id, side, status, price, qty, filled, remaining, reason in rows:
            writes.private_events.append((org, {
                "type": "order", "order_id": oid, "client_order_id": client_id, "instrument_id": instrument_id,
                "side": side, "status": status, "price": cny(price), "qty": qty, "filled": filled,
                "remaining": remaining, "reason": reason,
            }))
