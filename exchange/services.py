"""Order services shared by every edge: place, cancel, amend."""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from accounts.access import Actor, actor_refresh, check_actor
from exchange import ledger, selectors
from exchange.errors import AppError, NotFound
from exchange.gateway import (
    batch_outcomes, batch_plan, order_request_parse, orders_submit, orders_submit_isolating, price_fen_parse,
    rejection,
)
from exchange.models import InboxCommand, Instrument, Order



def order_lock_key(order_id: int) -> int:
    """The per-order advisory lock's key, in the one-bigint form so any order id fits.

    The engine's shard locks use the two-int form, a separate key space. The other
    one-bigint lock, the provenance chain's, is positive; order ids are positive, so
    their negation never meets it (nor each other).
    """
    return -order_id


def order_place(*, actor: Actor, data: dict) -> tuple[Order, bool]:
    """Place one order; return it and whether it is new (False: a repeated client_order_id)."""
    check_actor(actor_refresh(actor), scope="trade", acting=True)
    request = order_request_parse(data, actor=actor)
    with transaction.atomic():
        (result,) = orders_submit([request])
    if not result.ok:
        raise rejection(result)
    return Order.objects.select_related("instrument").get(pk=result.order_id), result.code == "accepted"


def orders_place_batch(*, actor: Actor, items: list) -> list[dict]:
    """Place up to MAX_BATCH orders in one transaction, each with its own result."""
    check_actor(actor_refresh(actor), scope="trade", acting=True)
    plan = batch_plan(items, actor=actor)
    with transaction.atomic():
        results = orders_submit_isolating(plan.requests)
    return batch_outcomes(plan, results)


def _live_order(actor: Actor, order_id: int, *, amend: bool = False) -> Order:
    """The caller's live order, with the order's change lock held until commit.

    An advisory lock, not a row lock: the engine updates order rows while holding ledger
    locks, and a row lock here taken before a ledger lock could deadlock with it.

    The instrument's state is read now, as order entry reads it: no change once gate
    closure has passed (the engine cancels everything then), and no amendment while the
    instrument is halted — an amended price could cross and trade the moment the market
    resumes. Cancels stay allowed while halted, so that a trader can pull orders out of a
    market that stopped.
    """
    if not 0 < order_id < 2**63:  # no such order, and no bigint to lock
        raise NotFound("No order with that id belongs to your organisation.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s::bigint)", [order_lock_key(order_id)])
    order = (
        Order.objects.select_related("instrument")
        .filter(pk=order_id, organisation_id=actor.membership.organisation_id).first()
    )
    if order is None:
        raise NotFound("No order with that id belongs to your organisation.")
    if order.status not in Order.LIVE:
        raise AppError("order_not_live", f"The order is {order.status}; only live orders can be changed.", status_code=409)
    if order.instrument.state == Instrument.State.CLOSED or order.instrument.gate_closure_at <= timezone.now():
        raise AppError("gate_closed", "Gate closure has passed for this instrument.", status_code=409)
    if amend and order.instrument.state == Instrument.State.HALTED:
        raise AppError("instrument_halted", "Trading in this instrument is halted by the regulator; orders can be "
                       "cancelled but not amended until it resumes.", status_code=409)
    if InboxCommand.objects.filter(order=order, processed_at__isnull=True).exclude(action=InboxCommand.Action.NEW).exists():
        raise AppError("change_pending", "A cancel or amendment of this order is still being processed; try again in a moment.",
                       status_code=409)
    return order


def _notify() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('cx_inbox', '')")


def order_cancel(*, actor: Actor, order_id: int) -> Order:
    """Ask the engine to cancel; repeating it while the cancel is pending changes nothing."""
    check_actor(actor_refresh(actor), scope="trade", acting=False)
    with transaction.atomic():
        order = _live_order(actor, order_id)
        InboxCommand.objects.create(instrument_id=order.instrument_id, action=InboxCommand.Action.CANCEL, order=order)
        _notify()
    return order


def hold_per_lot(*, price_fen: int, organisation_id: int) -> int:
    """Price plus the largest taker fee one lot can cost (mirrors cx_place_orders)."""
    taker_bps = selectors.fee_bps(organisation_id=organisation_id)[1]
    return price_fen + (price_fen * taker_bps + 9999) // 10000


def order_amend(*, actor: Actor, order_id: int, data: dict) -> Order:
    """Cut the quantity (keeps time priority) or change the price (loses it).

    A bid whose new price needs more funds holds the difference now; the engine moves it
    to the order, releases whatever the order no longer needs, or gives it all back if
    the order is gone by then. One change per order is in flight at a time.
    """
    check_actor(actor_refresh(actor), scope="trade", acting=True)
    if not isinstance(data, dict):
        raise AppError("invalid", "Send a JSON object with a new price, a new qty, or both.")
    fields = {}
    unknown = set(data) - {"price", "qty"}
    if unknown:
        fields["non_field_errors"] = f"Only price and qty can be amended (got {', '.join(sorted(unknown))})."
    new_price = None
    if data.get("price") is not None:
        new_price, problem = price_fen_parse(data["price"], tick_fen=None)
        if problem:
            fields["price"] = problem
    new_qty = data.get("qty")
    if new_qty is not None and (isinstance(new_qty, bool) or not isinstance(new_qty, int) or new_qty <= 0):
        fields["qty"] = "A whole number of SCU·h greater than zero."
    if not fields and new_price is None and new_qty is None:
        fields["non_field_errors"] = "Send a new price, a new qty, or both."
    if fields:
        raise AppError("invalid", "The amendment is not valid.", fields=fields)
    with transaction.atomic():
        order = _live_order(actor, order_id, amend=True)
        if order.type == Order.Type.MARKET:
            raise AppError("invalid", "Market orders cannot be amended.")
        if new_price is not None and new_price % order.instrument.tick_fen:
            raise AppError("invalid", "The price must be a multiple of the tick.", fields={"price": "Not on the tick."})
        if new_qty is not None and new_qty > order.remaining:
            raise AppError(
                "invalid", "Amend can only cut the quantity; place a new order to buy or sell more.",
                fields={"qty": f"At most the remaining {order.remaining} SCU·h."},
            )
        extra, per_lot = 0, None
        if order.side == Order.Side.BUY and new_price is not None:
            per_lot = hold_per_lot(price_fen=new_price, organisation_id=order.organisation_id)
            extra = max(0, (per_lot - order.hold_per_lot_fen) * (new_qty or order.remaining))
            if extra:
                ledger.hold(organisation_id=order.organisation_id, amount_fen=extra, order=order)
        InboxCommand.objects.create(
            instrument_id=order.instrument_id, action=InboxCommand.Action.AMEND, order=order,
            new_price_fen=new_price, new_qty=new_qty, extra_hold_fen=extra, new_hold_per_lot_fen=per_lot,
        )
        _notify()
    return order
