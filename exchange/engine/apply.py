"""Applying a batch to the books: inbox commands translated into matching commands, the books'
events turned into order changes, trades with their fees and ledger legs, releases of holds
and capacity, and instrument state changes — all gathered in a ``BatchWrites``, nothing
written."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.conf import settings
from django.utils import timezone

import matching
from exchange.engine.batch import BatchWrites, TradeRow
from exchange.engine.inbox import LiveOrder, PendingCommand, band_ticks, micros
from exchange.models import FeeTier, InboxCommand, Instrument, LedgerAccount, MemberTier, Order
from exchange.money import cny, fee_fen
from matching.types import COMMAND_DTYPE, Action, EventType, Mode, Reason, Side, Tif

TIF_CODES = {"GTC": Tif.GTC, "GTD": Tif.GTD, "IOC": Tif.IOC, "FOK": Tif.FOK}
REASONS = {int(r): r.name.lower() for r in Reason}

# Looked up per trade: plain names, not enum attribute lookups.
HELD, ESCROW, AVAILABLE, PAYABLE, FEES = (LedgerAccount.Kind.HELD, LedgerAccount.Kind.ESCROW,
                                          LedgerAccount.Kind.AVAILABLE, LedgerAccount.Kind.PAYABLE,
                                          LedgerAccount.Kind.FEES)

FILLED, PARTIALLY_FILLED = Order.Status.FILLED, Order.Status.PARTIALLY_FILLED


class Apply:
    """The runner's matching stage (a part of ``EngineRunner``)."""

    def _run(self, commands: list[PendingCommand]) -> BatchWrites:
        writes = BatchWrites()
        by_instrument: dict[int, list[PendingCommand]] = {}
        for command in commands:
            by_instrument.setdefault(command.instrument_id, []).append(command)
        fees = self._fee_rates(commands)
        for instrument_id in by_instrument:
            self.book_for(instrument_id)
        self._read_halts(by_instrument)
        for instrument_id, batch in by_instrument.items():
            book = self.books[instrument_id]
            instrument = self.instruments[instrument_id]
            array, sources = self._commands(instrument, book, batch, writes)
            # An amend's qty was a cut of the remaining order entry read; fills since then (earlier
            # in this batch, or in the one being written) may have left less, and matching takes
            # the qty as the new remaining, so it would grow the order beyond its hold. The batch is
            # matched up to each such amend, which then cuts only what is still left.
            cuts = np.flatnonzero((array["action"] == Action.AMEND) & (array["qty"] > 0)).tolist()
            cut_at = set(cuts)
            for start, end in zip([0, *cuts], [*cuts, len(array)]):
                if start == end and len(array):
                    continue
                if start in cut_at:
                    live = self.live.get(int(array["order_id"][start]))
                    if live is not None and array["qty"][start] >= live.remaining:
                        array["qty"][start] = 0  # no cut any more: the remaining stays
                events = (book.process(array[start:end]) if end > start
                          else np.zeros(0, dtype=matching.types.EVENT_DTYPE))
                self._apply(instrument, book, events, sources[start:end], fees, writes)
            writes.touched_instruments.add(instrument_id)
        return writes

    def _prepare(self, commands: list[PendingCommand]) -> BatchWrites:
        writes = self._run(commands)
        self._finalise(writes)
        return writes

    def _finalise(self, writes: BatchWrites) -> None:
        """Everything of the batch that needs the books or the runner's caches, so that writing
        it needs neither: trade ids and rows, release accounts, market-data messages and the
        instrument fields to save."""
        now = timezone.now()
        ids = self._next_ids("exchange_trade", len(writes.trades))
        writes.trade_rows = [TradeRow(trade_id, *trade, now) for trade_id, trade in zip(ids, writes.trades)]
        writes.release_accounts = [(self._account(org_id, HELD), self._account(org_id, AVAILABLE))
                                   for _, org_id, _ in writes.releases]
        self._build_market_data(writes)

    def _commands(self, instrument: Instrument, book, batch: list[PendingCommand], writes: BatchWrites):
        """Inbox rows → COMMAND_DTYPE rows; ``sources[i]`` is the inbox row of command i."""
        rows, sources = [], []
        now = micros(timezone.now())
        tick = instrument.tick_fen
        live = self.live
        updates = writes.order_updates
        NEW, CANCEL, AMEND = InboxCommand.Action.NEW, InboxCommand.Action.CANCEL, InboxCommand.Action.AMEND
        # Rows follow COMMAND_FIELDS: action, order_id, owner, side, price, qty, tif, post_only, expiry, ts, protect.
        for command in batch:
            action = command.action
            if action == NEW:
                order = command.order
                live[order.id] = order.live(instrument.id)
                updates.setdefault(order.id, {})["priority_seq"] = command.seq
                rows.append((
                    Action.MARKET if order.type == Order.Type.MARKET else Action.LIMIT, order.id, order.owner_id,
                    Side.BUY if order.side == "buy" else Side.SELL, (order.price_fen or 0) // tick, order.remaining,
                    TIF_CODES[order.tif], int(order.post_only), order.expiry_us,
                    now, order.protect_ticks,
                ))
            elif action == CANCEL:
                rows.append((Action.CANCEL, command.order_id, 0, 0, 0, 0, 0, 0, 0, now, 0))
            elif action == AMEND:
                rows.append((Action.AMEND, command.order_id, 0, 0, (command.new_price_fen or 0) // tick,
                             command.new_qty or 0, 0, 0, 0, now, 0))
                if command.new_price_fen:
                    updates.setdefault(command.order_id, {})["priority_seq"] = command.seq
            elif action == InboxCommand.Action.UNCROSS:
                if instrument.state == Instrument.State.HALTED:
                    continue  # due before the halt: the auction after resuming uncrosses
                writes.instrument_changes.setdefault(instrument.id, {}).update(
                    state=Instrument.State.CONTINUOUS, auction_ends_at=None)
                if book.mode != Mode.AUCTION:
                    continue  # nothing for the book (sources[i] must stay the command of row i)
                rows.append((Action.UNCROSS, 0, 0, 0, 0, 0, 0, 0, 0, now, 0))
            elif action == InboxCommand.Action.AUCTION:
                if book.mode != Mode.CONTINUOUS:
                    continue  # already collecting (an auction, or halted)
                # Halted and resumed between two batches: no batch read the halt, so the
                # resumption's call auction starts here.
                writes.instrument_changes.setdefault(instrument.id, {}).update(state=Instrument.State.AUCTION)
                rows.append((Action.SET_AUCTION, 0, 0, 0, 0, 0, 0, 0, 0, now, 0))
            elif action == InboxCommand.Action.EXPIRE:
                rows.append((Action.EXPIRE, 0, 0, 0, 0, 0, 0, 0, 0, now, 0))
            elif action == InboxCommand.Action.CLOSE:
                for resting in book.orders()["order_id"].tolist():
                    rows.append((Action.CANCEL, resting, 0, 0, 0, 0, 0, 0, 0, now, 0))
                    sources.append(command)
                writes.instrument_changes.setdefault(instrument.id, {}).update(state=Instrument.State.CLOSED)
                continue
            else:  # pragma: no cover - the model's choices list every action
                raise ValueError(f"unknown inbox action {command.action}")
            sources.append(command)
        return np.array(rows, dtype=COMMAND_DTYPE) if rows else np.zeros(0, dtype=COMMAND_DTYPE), sources

    def _fee_rates(self, commands) -> dict:
        default = FeeTier.objects.filter(is_default=True).values_list("maker_bps", "taker_bps").first() or (0, 0)
        tiers = {
            org: (maker, taker)
            for org, maker, taker in MemberTier.objects.values_list("organisation_id", "tier__maker_bps", "tier__taker_bps")
        }
        return {"default": default, "tiers": tiers}

    def _apply(self, instrument, book, events, sources, fees, writes: BatchWrites) -> None:
        match_index: dict[int, int] = {}
        tick = instrument.tick_fen
        # Plain tuples (fields in EVENT_FIELDS order): reading numpy records one field at a
        # time cost more than everything the loop does with them.
        for (etype, cmd_index, order_id, _side, price, qty, remaining, reason,
             maker_id, taker_id, *_rest) in events.tolist():
            source = sources[cmd_index] if sources else None
            if etype == EventType.TRADE:
                seq = source.seq
                index = match_index[seq] = match_index.get(seq, -1) + 1
                self._trade(instrument, qty, maker_id, taker_id, reason == Reason.AUCTION, seq, index, fees, writes,
                            price_fen=price * tick)
            elif etype == EventType.ACCEPTED:
                update = writes.order_updates.get(order_id)
                if update is None:
                    update = writes.order_updates[order_id] = {}
                update["status"] = Order.Status.OPEN
            elif etype == EventType.REJECTED and source.action != InboxCommand.Action.NEW:
                # A refused cancel or amend leaves the order as it was; an amend's extra hold goes back.
                if source.action == InboxCommand.Action.AMEND and source.extra_hold_fen:
                    writes.releases.append((source.order_id, source.order.organisation_id, source.extra_hold_fen))
            elif etype in (EventType.REJECTED, EventType.CANCELLED, EventType.EXPIRED):
                status = {EventType.REJECTED: Order.Status.REJECTED, EventType.CANCELLED: Order.Status.CANCELLED,
                          EventType.EXPIRED: Order.Status.EXPIRED}[etype]
                self._finish(writes, order_id, status, REASONS.get(reason, ""))
            elif etype == EventType.AMENDED:
                self._amended(writes, source, remaining, price * tick)
            elif etype == EventType.VOLATILITY:
                writes.instrument_changes.setdefault(instrument.id, {}).update(
                    state=Instrument.State.AUCTION,
                    auction_ends_at=timezone.now() + timedelta(seconds=settings.VOLATILITY_AUCTION_SECONDS),
                )
            elif etype == EventType.AUCTION_UNCROSSED:
                changes = writes.instrument_changes.setdefault(instrument.id, {})
                changes.update(state=Instrument.State.CONTINUOUS, auction_ends_at=None)
                if price:
                    changes["reference_price_fen"] = price * tick
        # The band follows the new reference price after an auction; an instrument whose
        # opening auction did not cross takes its first trade's price as the reference.
        changes = writes.instrument_changes.get(instrument.id, {})
        if not instrument.reference_price_fen and "reference_price_fen" not in changes:
            if instrument.id in writes.first_price:
                changes = writes.instrument_changes.setdefault(instrument.id, {})
                changes["reference_price_fen"] = writes.first_price[instrument.id]
        if "reference_price_fen" in changes:
            instrument.reference_price_fen = changes["reference_price_fen"]
            ref_ticks = instrument.reference_price_fen // tick
            book.process(matching.types.make_commands([{"action": Action.SET_BAND, "price": ref_ticks,
                                                         "qty": band_ticks(instrument)}]))
        for key, value in changes.items():
            setattr(instrument, key, value)

    def _update(self, writes: BatchWrites, order_id: int, **values) -> dict:
        update = writes.order_updates.setdefault(order_id, {})
        update.update(values)
        return update

    def _account(self, organisation_id: int | None, kind: str) -> int:
        key = (organisation_id, kind)
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = LedgerAccount.objects.get_or_create(
                organisation_id=organisation_id, kind=kind)[0].id
        return account

    def _trade(self, instrument, qty, maker_id, taker_id, auction, seq, index, fees, writes: BatchWrites, *,
               price_fen: int) -> None:
        taker = self.live[taker_id]
        maker = self.live[maker_id]
        buy, sell = (taker, maker) if taker.side == "buy" else (maker, taker)
        notional = price_fen * qty
        tiers, default = fees["tiers"], fees["default"]
        buyer_bps = tiers.get(buy.organisation_id, default)[1 if not auction and buy is taker else 0]
        seller_bps = tiers.get(sell.organisation_id, default)[1 if not auction and sell is taker else 0]
        buyer_fee = fee_fen(notional, buyer_bps)
        seller_fee = fee_fen(notional, seller_bps)
        released_hold = buy.hold_per_lot_fen * qty
        trade = len(writes.trades)
        writes.trades.append((
            instrument.id, seq, index, price_fen, qty, buy.id, sell.id, buy.organisation_id, sell.organisation_id,
            "auction" if auction else taker.side, buyer_fee, seller_fee,
        ))
        writes.first_price.setdefault(instrument.id, price_fen)
        account = self._account
        legs = writes.trade_legs
        buyer_org = buy.organisation_id
        for key, amount in (
            ((buyer_org, HELD), -released_hold),
            ((buyer_org, ESCROW), notional),
            ((buyer_org, AVAILABLE), released_hold - notional - buyer_fee),
            ((sell.organisation_id, PAYABLE), -seller_fee),
            ((None, FEES), buyer_fee + seller_fee),
        ):
            if amount:
                legs.append((trade, account(*key), amount))
        buy.held_fen -= released_hold
        updates = writes.order_updates
        for order in (buy, sell):
            order.remaining -= qty
            update = updates.get(order.id)
            if update is None:
                update = updates[order.id] = {}
            update["filled_delta"] = update.get("filled_delta", 0) + qty
            update["remaining"] = order.remaining
            update["held_fen"] = order.held_fen
            update["status"] = FILLED if order.remaining == 0 else PARTIALLY_FILLED
        seller_position = writes.position(sell.organisation_id, instrument.id)
        seller_position[0] -= qty
        seller_position[1] += qty
        writes.position(buy.organisation_id, instrument.id)[2] += qty
        if buy.remaining == 0:
            self._release(writes, buy)
        for order in (buy, sell):
            if order.remaining == 0:
                del self.live[order.id]
        price = cny(price_fen)
        writes.private_events += (
            (buy.organisation_id, {"type": "trade", "instrument": instrument.code, "side": "buy", "order_id": buy.id,
                                   "price": price, "qty": qty, "fee": cny(buyer_fee)}),
            (sell.organisation_id, {"type": "trade", "instrument": instrument.code, "side": "sell",
                                    "order_id": sell.id, "price": price, "qty": qty, "fee": cny(seller_fee)}),
        )

    def _release(self, writes: BatchWrites, order: LiveOrder) -> None:
        """Give back what an order no longer needs: a bid's remaining hold, an ask's capacity."""
        if order.side == "buy" and order.held_fen:
            writes.releases.append((order.id, order.organisation_id, order.held_fen))
            order.held_fen = 0
        elif order.side == "sell" and order.remaining:
            writes.position(order.organisation_id, order.instrument_id)[0] -= order.remaining
        self._update(writes, order.id, held_fen=0)

    def _finish(self, writes: BatchWrites, order_id: int, status: str, reason: str) -> None:
        order = self.live.pop(order_id)
        self._release(writes, order)
        self._update(writes, order_id, status=status, reason=reason)

    def _amended(self, writes: BatchWrites, source: PendingCommand, remaining: int, price_fen: int) -> None:
        order = self.live[source.order_id]
        if order.side == "buy":
            order.held_fen += source.extra_hold_fen
            if source.new_hold_per_lot_fen:
                order.hold_per_lot_fen = source.new_hold_per_lot_fen
            # Whatever the amended order can no longer need goes back to available.
            excess = order.held_fen - order.hold_per_lot_fen * remaining
            if excess > 0:
                writes.releases.append((order.id, order.organisation_id, excess))
                order.held_fen -= excess
        elif remaining < order.remaining:
            writes.position(order.organisation_id, order.instrument_id)[0] -= order.remaining - remaining
        order.remaining = remaining
        self._update(writes, order.id, remaining=remaining, held_fen=order.held_fen, price_fen=price_fen,
                     hold_per_lot_fen=order.hold_per_lot_fen)
