"""Instrument lifecycle: listing on a rolling horizon, auctions, halts, gate closure.

State changes that the books must see (uncross, start an auction, close, expire) go
through the inbox like orders, so the engine applies them in sequence and a restart
replays them exactly once. A halt is written to the instrument row: order entry refuses
new orders and amendments while the engine, which reads it before each batch, stops
matching (the book keeps its resting orders and collects, as in an auction).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from exchange.errors import AppError
from exchange.models import InboxCommand, Instrument, Order
from marketplace.periods import (
    DEMO_CLASS_CODE, china_midnight, china_today, class_period, is_demo_class, period_containing, period_starts,
)

CHINA = ZoneInfo("Asia/Shanghai")
Action = InboxCommand.Action
State = Instrument.State


def instrument_code(*, class_code: str, hub_code: str, start: datetime, period: timedelta) -> str:
    """``AI80.NX.2026-11-24`` for a day, ``…T06`` for hours, ``…T0635`` for the demo's minutes."""
    local = start.astimezone(CHINA)
    if period == timedelta(days=1):
        when = f"{local:%Y-%m-%d}"
    elif period % timedelta(hours=1) == timedelta(0):
        when = f"{local:%Y-%m-%dT%H}"
    else:
        when = f"{local:%Y-%m-%dT%H%M}"
    return f"{class_code}.{hub_code}.{when}"


@dataclass(frozen=True)
class Schedule:
    """How a class's instruments are listed: every period starting before ``until``, in
    ``hub_ids`` (None: every hub), trading until ``gate`` before the period starts, after
    an opening auction ``auction`` long."""

    period: timedelta
    gate: timedelta
    auction: timedelta
    until: datetime
    hub_ids: list[int] | None


def _schedule(compute_class, now: datetime) -> Schedule | None:
    from marketplace.models import ListingPeriod

    period = class_period(compute_class)
    if is_demo_class(compute_class):
        # Minutes-long windows: every other time scaled down too, and markets only where the
        # demo lists capacity, so its markets are not mostly empty ones.
        until = now + timedelta(minutes=settings.DEMO_HORIZON_MINUTES)
        hubs = (ListingPeriod.objects.filter(compute_class=compute_class, period_start__lt=until,
                                             period_start__gte=period_containing(now, period))
                .values_list("hub_id", flat=True).distinct())
        auction = min(settings.OPENING_AUCTION_SECONDS, settings.DEMO_OPENING_AUCTION_SECONDS)
        return Schedule(period=period, gate=timedelta(seconds=settings.DEMO_GATE_CLOSURE_SECONDS),
                        auction=timedelta(seconds=auction), until=until, hub_ids=list(hubs))
    if compute_class.code == DEMO_CLASS_CODE:
        return None  # the demo class trades only in demo mode
    days = settings.INSTRUMENT_HORIZON_DAYS + 1
    return Schedule(period=period, gate=timedelta(minutes=settings.GATE_CLOSURE_MINUTES),
                    auction=timedelta(seconds=settings.OPENING_AUCTION_SECONDS),
                    until=china_midnight(china_today(now) + timedelta(days=days)), hub_ids=None)


def instruments_list(*, now: datetime | None = None) -> int:
    """List every class × hub × period up to the horizon that is not listed yet; return how many."""
    from marketplace.models import ComputeClass, Hub

    now = now or timezone.now()
    hubs = list(Hub.objects.all())
    new = []
    for compute_class in ComputeClass.objects.all():
        schedule = _schedule(compute_class, now)
        if schedule is None:
            continue
        starts = period_starts(period_containing(now, schedule.period), schedule.until, schedule.period)
        for hub in hubs:
            if schedule.hub_ids is not None and hub.id not in schedule.hub_ids:
                continue
            for start in starts:
                if start - schedule.gate <= now:
                    continue
                new.append(Instrument(
                    code=instrument_code(class_code=compute_class.code, hub_code=hub.code, start=start,
                                         period=schedule.period),
                    compute_class=compute_class, hub=hub,
                    delivery_start=start, delivery_end=start + schedule.period,
                    gate_closure_at=start - schedule.gate,
                    state=State.PRE_OPEN, auction_ends_at=now + schedule.auction, band_bps=settings.PRICE_BAND_BPS,
                ))
    before = Instrument.objects.count()
    Instrument.objects.bulk_create(new, ignore_conflicts=True)
    return Instrument.objects.count() - before


def _enqueue(instrument_id: int, action: str) -> None:
    InboxCommand.objects.create(instrument_id=instrument_id, action=action)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('cx_inbox', '')")


def _pending(instrument_id: int, action: str) -> bool:
    return InboxCommand.objects.filter(instrument_id=instrument_id, action=action, processed_at__isnull=True).exists()


@transaction.atomic
def instrument_open(*, instrument: Instrument) -> None:
    """Uncross the opening (or volatility) auction now."""
    instrument = Instrument.objects.select_for_update().get(pk=instrument.pk)
    if instrument.state not in (State.PRE_OPEN, State.AUCTION):
        raise AppError("wrong_state", f"{instrument.code} is {instrument.get_state_display().lower()}, not in an auction.",
                       status_code=409)
    if not _pending(instrument.id, Action.UNCROSS):
        _enqueue(instrument.id, Action.UNCROSS)


@transaction.atomic
def instrument_halt(*, instrument: Instrument) -> Instrument:
    instrument = Instrument.objects.select_for_update().get(pk=instrument.pk)
    if instrument.state == State.CLOSED:
        raise AppError("wrong_state", f"{instrument.code} is closed.", status_code=409)
    instrument.state = State.HALTED
    instrument.save(update_fields=["state"])
    # The engine reads the halt before its next batch; this command makes that batch come
    # now, so the halt stops matching at once and market data shows it (the book collects
    # from here, as in an auction).
    _enqueue(instrument.id, Action.AUCTION)
    return instrument


@transaction.atomic
def instrument_resume(*, instrument: Instrument) -> Instrument:
    """Resume a halted instrument through a short call auction, as after a volatility stop."""
    instrument = Instrument.objects.select_for_update().get(pk=instrument.pk)
    if instrument.state != State.HALTED:
        raise AppError("wrong_state", f"{instrument.code} is not halted.", status_code=409)
    instrument.state = State.AUCTION
    instrument.auction_ends_at = timezone.now() + timedelta(seconds=settings.VOLATILITY_AUCTION_SECONDS)
    instrument.save(update_fields=["state", "auction_ends_at"])
    _enqueue(instrument.id, Action.AUCTION)
    return instrument


def _enqueue_many(instrument_ids: list[int], action: str) -> None:
    InboxCommand.objects.bulk_create([InboxCommand(instrument_id=i, action=action) for i in instrument_ids])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('cx_inbox', '')")


def _locked(instrument_ids) -> list[Instrument]:
    # In id order, as the engine writes instrument rows: two writers never wait on each other in a cycle.
    return list(Instrument.objects.select_for_update().filter(pk__in=list(instrument_ids)).order_by("id"))


@transaction.atomic
def instruments_halt(*, instrument_ids) -> list[Instrument]:
    """Halt every one of ``instrument_ids`` that is trading or in an auction; return those halted.

    As ``instrument_halt``, for many at once (a class, a hub, the whole market): closed and
    already halted instruments are left as they are."""
    halted = [i for i in _locked(instrument_ids) if i.state not in (State.CLOSED, State.HALTED)]
    ids = [i.id for i in halted]
    Instrument.objects.filter(pk__in=ids).update(state=State.HALTED)
    for instrument in halted:
        instrument.state = State.HALTED
    _enqueue_many(ids, Action.AUCTION)
    return halted


@transaction.atomic
def instruments_resume(*, instrument_ids, auction_seconds: int | None = None) -> list[Instrument]:
    """Resume every halted one of ``instrument_ids`` through a call auction of ``auction_seconds``
    (default VOLATILITY_AUCTION_SECONDS), which uncrosses by itself (housekeeping); return them."""
    seconds = settings.VOLATILITY_AUCTION_SECONDS if auction_seconds is None else auction_seconds
    ends = timezone.now() + timedelta(seconds=seconds)
    resumed = [i for i in _locked(instrument_ids) if i.state == State.HALTED]
    ids = [i.id for i in resumed]
    Instrument.objects.filter(pk__in=ids).update(state=State.AUCTION, auction_ends_at=ends)
    for instrument in resumed:
        instrument.state, instrument.auction_ends_at = State.AUCTION, ends
    # The command makes the runner read the resumption now (market data shows the auction).
    _enqueue_many(ids, Action.AUCTION)
    return resumed


# Every live order of the instruments without a cancel already waiting: one cancel command
# each, after whatever the inbox holds for it (a new order is placed, then cancelled).
CANCEL_ALL_SQL = """
    WITH live AS (
        SELECT o.id, o.organisation_id, o.instrument_id FROM exchange_order o
        WHERE o.instrument_id = ANY(%(ids)s) AND o.status IN ('accepted', 'open', 'partially_filled')
          AND NOT EXISTS (SELECT 1 FROM exchange_inboxcommand c
                          WHERE c.order_id = o.id AND c.action = 'cancel' AND c.processed_at IS NULL)
        ORDER BY o.id
    ), queued AS (
        INSERT INTO exchange_inboxcommand (instrument_id, action, order_id, extra_hold_fen, created_at)
        SELECT instrument_id, 'cancel', id, 0, now() FROM live ORDER BY id
        RETURNING order_id
    )
    SELECT live.id, live.organisation_id, live.instrument_id FROM live JOIN queued ON queued.order_id = live.id
    ORDER BY live.id
"""


@transaction.atomic
def orders_cancel_all(*, instrument_ids) -> list[tuple[int, int, int]]:
    """Cancel every live order of ``instrument_ids`` through the engine, as a trader's cancel
    goes: the engine takes each out of its book, releases its hold or capacity and tells its
    owner. Returns (order id, organisation id, instrument id) of each order asked to cancel."""
    ids = sorted(instrument_ids)
    if not ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(CANCEL_ALL_SQL, {"ids": ids})
        rows = cursor.fetchall()
        if rows:
            cursor.execute("SELECT pg_notify('cx_inbox', '')")
    return rows


@transaction.atomic
def instrument_band_set(*, instrument: Instrument, band_bps: int) -> tuple[Instrument, int]:
    """Set the price band (basis points either side of the reference price); return the
    instrument and the band it had. Order entry reads the row for every order; the engine
    reads the band before its next batch of the instrument (``Inbox._read_halts``).

    A narrower band is safe at once. A wider one meets a market bid whose entry read the
    old band (and held for its top) only if that entry was under way as this commits; such
    a bid can then pay up to the new top, the difference coming from its organisation's
    available funds (the engine sets the order aside if they do not cover it)."""
    instrument = Instrument.objects.select_for_update().get(pk=instrument.pk)
    if instrument.state == State.CLOSED:
        raise AppError("wrong_state", f"{instrument.code} is closed.", status_code=409)
    before = instrument.band_bps
    instrument.band_bps = band_bps
    instrument.save(update_fields=["band_bps"])
    return instrument, before


_last_listing = 0.0


def housekeeping(*, runner, now: datetime | None = None) -> None:
    """Timed work of a runner: listing, due auctions, gate closure, GTD expiry."""
    global _last_listing
    now = now or timezone.now()
    if runner.shard == 0 and time.monotonic() - _last_listing > 60:
        instruments_list(now=now)
        _last_listing = time.monotonic()
    with transaction.atomic():
        due = Instrument.objects.filter(
            state__in=(State.PRE_OPEN, State.AUCTION), auction_ends_at__lte=now, gate_closure_at__gt=now
        ).values_list("id", flat=True)
        for instrument_id in due:
            if runner.owns(instrument_id) and not _pending(instrument_id, Action.UNCROSS):
                _enqueue(instrument_id, Action.UNCROSS)
        closing = Instrument.objects.filter(gate_closure_at__lte=now).exclude(state=State.CLOSED).values_list("id", flat=True)
        for instrument_id in closing:
            if runner.owns(instrument_id) and not _pending(instrument_id, Action.CLOSE):
                _enqueue(instrument_id, Action.CLOSE)
        expiring = (
            Order.objects.filter(status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED), expires_at__lte=now)
            .values_list("instrument_id", flat=True).distinct()
        )
        for instrument_id in expiring:
            if runner.owns(instrument_id) and not _pending(instrument_id, Action.EXPIRE):
                _enqueue(instrument_id, Action.EXPIRE)
