"""The console's instruments: compute classes, hubs and instruments as the regulator sees
them, and what the regulator does to them — open an opening auction early, halt and resume
(one instrument, a class, a hub or the whole market, keeping or cancelling open orders),
and set the price band.

Every action needs the ``supervise`` scope and a reason, is recorded (``action_record``),
and is told after commit to the open consoles and to each organisation with live orders
in an instrument it changed. The change itself reaches the engine through the instrument
row and the inbox (``exchange.instruments``), and market-data subscribers through the
engine's ``md.update``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.access import Actor, check_supervisor
from exchange import instruments as lifecycle
from exchange.errors import AppError, NotFound
from exchange.events import private_events_send
from exchange.models import Instrument, Order
from marketplace.models import ComputeClass, Hub
from marketplace.periods import china_midnight
from supervision.events import console_publish
from supervision.models import SupervisionAction
from supervision.services import action_record

log = logging.getLogger("supervision.instruments")

State = Instrument.State
SCOPES = ("instrument", "class", "hub", "market")
ORDERS = ("keep", "cancel")
REASON_MAX = 1000
BAND_BPS_MIN, BAND_BPS_MAX = 1, 5000  # ±0.01 % to ±50 % of the reference price
AUCTION_SECONDS_MIN, AUCTION_SECONDS_MAX = 5, 3600
TRADING = (State.PRE_OPEN, State.CONTINUOUS, State.AUCTION)
# The instrument list's state filter: a state, "all", or (empty) every instrument not closed.
STATE_FILTERS = ("", "all", *State.values)


@dataclass(frozen=True)
class Scope:
    """What an action applies to: one instrument, a compute class, a hub or the market."""

    kind: str
    code: str = ""

    def as_dict(self) -> dict:
        return {"kind": self.kind, "code": self.code or None}


@dataclass
class Outcome:
    """An action done: its record, the instruments it changed, and the orders it asked the
    engine to cancel."""

    record: SupervisionAction
    scope: Scope
    instruments: list[Instrument]
    orders_cancelled: int = 0
    extra: dict = field(default_factory=dict)


# --- reading ---------------------------------------------------------------------------------


def _instrument_counts(prefix: str) -> dict:
    return {
        "instruments_trading": Count(prefix, filter=Q(**{f"{prefix}__state__in": TRADING})),
        "instruments_halted": Count(prefix, filter=Q(**{f"{prefix}__state": State.HALTED})),
    }


def class_list() -> QuerySet[ComputeClass]:
    """Compute classes with how many of their instruments trade and how many are halted."""
    return ComputeClass.objects.annotate(**_instrument_counts("instruments")).order_by("code")


def hub_list() -> QuerySet[Hub]:
    return Hub.objects.annotate(**_instrument_counts("instruments")).order_by("sort_order", "code")


def _open_orders() -> Subquery:
    # Served by order_live_idx (instrument, status) over live orders only.
    live = (Order.objects.filter(instrument=OuterRef("pk"), status__in=Order.LIVE).order_by()
            .values("instrument").annotate(n=Count("id")).values("n"))
    return Coalesce(Subquery(live, output_field=IntegerField()), Value(0))


def instrument_list(*, class_code: str = "", hub_code: str = "", state: str = "",
                    day: date | None = None) -> QuerySet[Instrument]:
    """Instruments by delivery, each with its count of live orders; ``state`` is a state,
    ``"all"``, or empty for every instrument not closed; ``day`` a delivery day (China)."""
    if state not in STATE_FILTERS:
        raise AppError("invalid", f"Unknown state {state!r}.",
                       fields={"state": f"One of: {', '.join(s for s in STATE_FILTERS if s)}."})
    queryset = Instrument.objects.select_related("compute_class", "hub").annotate(open_orders=_open_orders())
    if class_code:
        queryset = queryset.filter(compute_class__code=class_code)
    if hub_code:
        queryset = queryset.filter(hub__code=hub_code)
    if state == "":
        queryset = queryset.exclude(state=State.CLOSED)
    elif state != "all":
        queryset = queryset.filter(state=state)
    if day is not None:
        start = china_midnight(day)
        queryset = queryset.filter(delivery_start__gte=start, delivery_start__lt=start + timedelta(days=1))
    return queryset.order_by("delivery_start", "id")


def instrument_get(*, code: str) -> Instrument:
    instrument = instrument_list(state="all").filter(code=code).first()
    if instrument is None:
        raise NotFound(f"No instrument {code!r}.")
    return instrument


def instrument_actions(*, instrument: Instrument, limit: int = 50) -> list[SupervisionAction]:
    """The regulator's actions on ``instrument``, newest first: its own, and those on a class,
    hub or the market that changed it."""
    return list(
        SupervisionAction.objects.filter(action__startswith="instrument.")
        .filter(Q(instrument=instrument) | Q(details__instruments__contains=[instrument.code]))
        .select_related("actor").order_by("-created_at", "-id")[:limit]
    )


# --- checking input --------------------------------------------------------------------------


def reason_clean(reason) -> str:
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise AppError("invalid", "Give the reason for this action; it is recorded.",
                       fields={"reason": "Required."})
    if len(text) > REASON_MAX:
        raise AppError("invalid", f"The reason is limited to {REASON_MAX} characters.",
                       fields={"reason": f"At most {REASON_MAX} characters."})
    return text


def _whole(value, name: str, low: int, high: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AppError("invalid", f"{name} must be a whole number from {low} to {high} {unit}.",
                       fields={name: f"A whole number from {low} to {high}."})
    return value


def scope_instrument_ids(scope: Scope) -> list[int]:
    """The instruments ``scope`` names that are not closed; NotFound for an unknown code."""
    queryset = Instrument.objects.exclude(state=State.CLOSED)
    if scope.kind == "instrument":
        if not Instrument.objects.filter(code=scope.code).exists():
            raise NotFound(f"No instrument {scope.code!r}.")
        queryset = queryset.filter(code=scope.code)
    elif scope.kind == "class":
        if not ComputeClass.objects.filter(code=scope.code).exists():
            raise NotFound(f"No compute class {scope.code!r}.")
        queryset = queryset.filter(compute_class__code=scope.code)
    elif scope.kind == "hub":
        if not Hub.objects.filter(code=scope.code).exists():
            raise NotFound(f"No hub {scope.code!r}.")
        queryset = queryset.filter(hub__code=scope.code)
    elif scope.kind != "market":
        raise AppError("invalid", f"Unknown scope {scope.kind!r}.", fields={"scope": f"One of: {', '.join(SCOPES)}."})
    return sorted(queryset.values_list("id", flat=True))


# --- telling -----------------------------------------------------------------------------------


def _state_of(instrument: Instrument) -> dict:
    return {"code": instrument.code, "state": instrument.state, "band_bps": instrument.band_bps,
            "auction_ends_at": instrument.auction_ends_at.isoformat() if instrument.auction_ends_at else None}


def _tell(outcome: Outcome, *, action: str, reason: str, actor: Actor, live: dict, orders: str | None = None) -> None:
    """The console hears everything; an organisation hears of each changed instrument in which
    it has live orders (not the reason, which is the regulator's record)."""
    by_id = {i.id: i for i in outcome.instruments}
    console_publish({
        "type": "instrument.state", "action": action, "action_id": outcome.record.id,
        "scope": outcome.scope.as_dict(), "reason": reason, "by": actor.user.email,
        "at": outcome.record.created_at.isoformat(), "orders": orders, "orders_cancelled": outcome.orders_cancelled,
        "instruments": [_state_of(i) for i in outcome.instruments], **outcome.extra,
    })
    events = []
    for (organisation_id, instrument_id), count in sorted(live.items()):
        event = {"type": "instrument.state", "action": action, **_state_of(by_id[instrument_id])}
        event["instrument"] = event.pop("code")
        if orders is not None:
            event["orders"] = orders
            event["orders_cancelled"] = count if orders == "cancel" else 0
        events.append((organisation_id, event))
    private_events_send(events)


def _live_orders(instrument_ids: list[int]) -> dict[tuple[int, int], int]:
    """{(organisation id, instrument id): live orders} over ``instrument_ids``."""
    rows = (Order.objects.filter(instrument_id__in=instrument_ids, status__in=Order.LIVE).order_by()
            .values_list("organisation_id", "instrument_id").annotate(n=Count("id")))
    return {(org, instrument): n for org, instrument, n in rows}


def _details(scope: Scope, instruments: list[Instrument], **more) -> dict:
    return {"scope": scope.as_dict(), "instruments": [i.code for i in instruments], **more}


def _single(scope: Scope) -> Instrument | None:
    return Instrument.objects.get(code=scope.code) if scope.kind == "instrument" else None


# --- acting --------------------------------------------------------------------------------------


def instruments_halt(*, actor: Actor, scope: Scope, reason: str, orders: str = "keep") -> Outcome:
    """Halt the instruments of ``scope``; with ``orders="cancel"`` also cancel every live order
    in them (those already halted included), through the engine's own cancel."""
    check_supervisor(actor)
    reason = reason_clean(reason)
    if orders not in ORDERS:
        raise AppError("invalid", "orders must be keep or cancel.", fields={"orders": "keep or cancel."})
    with transaction.atomic():
        ids = scope_instrument_ids(scope)
        if scope.kind == "instrument" and not ids:
            raise AppError("wrong_state", f"{scope.code} is closed.", status_code=409)
        halted = lifecycle.instruments_halt(instrument_ids=ids)
        touched = halted
        if orders == "cancel":
            # Those halted before count too: a halt that cancels leaves no order in the scope.
            touched = list(Instrument.objects.filter(pk__in=ids, state=State.HALTED).order_by("id"))
        if not touched:
            raise AppError("already_halted", "Every instrument in scope is already halted (or closed); "
                           "nothing to halt.", status_code=409)
        touched_ids = [i.id for i in touched]
        live = _live_orders(touched_ids)
        cancelled = lifecycle.orders_cancel_all(instrument_ids=touched_ids) if orders == "cancel" else []
        record = action_record(actor=actor, action="instrument.halt", reason=reason, instrument=_single(scope),
                               details=_details(scope, touched, orders=orders, orders_cancelled=len(cancelled),
                                                newly_halted=[i.code for i in halted]))
        outcome = Outcome(record=record, scope=scope, instruments=touched, orders_cancelled=len(cancelled))
        _tell(outcome, action="halt", reason=reason, actor=actor, live=live, orders=orders)
        if orders == "cancel":
            # An order whose entry read the state just before the halt committed can commit just
            # after this sweep; a second sweep once the halt is visible catches it.
            transaction.on_commit(lambda: _sweep_again(touched_ids), robust=True)
    return outcome


def _sweep_again(instrument_ids: list[int]) -> None:
    late = lifecycle.orders_cancel_all(instrument_ids=instrument_ids)
    if late:
        log.info("halt: %d orders placed as the halt committed were cancelled too", len(late))


def instruments_resume(*, actor: Actor, scope: Scope, reason: str, auction_seconds: int | None = None) -> Outcome:
    """Resume the halted instruments of ``scope`` through a call auction that uncrosses by itself."""
    check_supervisor(actor)
    reason = reason_clean(reason)
    if auction_seconds is not None:
        _whole(auction_seconds, "auction_seconds", AUCTION_SECONDS_MIN, AUCTION_SECONDS_MAX, "seconds")
    with transaction.atomic():
        ids = scope_instrument_ids(scope)
        resumed = lifecycle.instruments_resume(instrument_ids=ids, auction_seconds=auction_seconds)
        if not resumed:
            raise AppError("not_halted", "No instrument in scope is halted; nothing to resume.", status_code=409)
        record = action_record(actor=actor, action="instrument.resume", reason=reason, instrument=_single(scope),
                               details=_details(scope, resumed, auction_ends_at=resumed[0].auction_ends_at.isoformat()))
        outcome = Outcome(record=record, scope=scope, instruments=resumed)
        _tell(outcome, action="resume", reason=reason, actor=actor, live=_live_orders([i.id for i in resumed]))
    return outcome


def instrument_open(*, actor: Actor, code: str, reason: str) -> Outcome:
    """Uncross an instrument's opening (or volatility) auction now rather than when it is due."""
    check_supervisor(actor)
    reason = reason_clean(reason)
    scope = Scope("instrument", code)
    with transaction.atomic():
        instrument = instrument_get(code=code)
        lifecycle.instrument_open(instrument=instrument)
        record = action_record(actor=actor, action="instrument.open", reason=reason, instrument=instrument,
                               details=_details(scope, [instrument], was=instrument.state))
        outcome = Outcome(record=record, scope=scope, instruments=[instrument])
        _tell(outcome, action="open", reason=reason, actor=actor, live=_live_orders([instrument.id]))
    return outcome


def instrument_band_set(*, actor: Actor, code: str, band_bps, reason: str) -> Outcome:
    """Set an instrument's price band, in basis points either side of its reference price."""
    check_supervisor(actor)
    reason = reason_clean(reason)
    band_bps = _whole(band_bps, "band_bps", BAND_BPS_MIN, BAND_BPS_MAX, "basis points")
    scope = Scope("instrument", code)
    with transaction.atomic():
        instrument, before = lifecycle.instrument_band_set(instrument=instrument_get(code=code), band_bps=band_bps)
        record = action_record(actor=actor, action="instrument.band", reason=reason, instrument=instrument,
                               details=_details(scope, [instrument], band_bps={"from": before, "to": band_bps}))
        outcome = Outcome(record=record, scope=scope, instruments=[instrument],
                          extra={"band_bps_before": before})
        _tell(outcome, action="band", reason=reason, actor=actor, live=_live_orders([instrument.id]))
    return outcome


def outcome_as_dict(outcome: Outcome) -> dict:
    """What the API answers and the console page reports."""
    record = outcome.record
    return {
        "action_id": record.id, "action": record.action.removeprefix("instrument."), "scope": outcome.scope.as_dict(),
        "reason": record.reason, "at": record.created_at, "orders": record.details.get("orders"),
        "orders_cancelled": outcome.orders_cancelled,
        "instruments": [_state_of(i) for i in outcome.instruments],
    }


__all__ = [
    "ORDERS", "SCOPES", "STATE_FILTERS", "Outcome", "Scope", "class_list", "hub_list", "instrument_actions",
    "instrument_band_set", "instrument_get", "instrument_list", "instrument_open", "instruments_halt",
    "instruments_resume", "outcome_as_dict", "reason_clean", "scope_instrument_ids",
]
