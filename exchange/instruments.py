"""Instrument lifecycle: listing on a rolling horizon, auctions, halts, gate closure.

State changes that the books must see (uncross, start an auction, close, expire) go
through the inbox like orders, so the engine applies them in sequence and a restart
replays them exactly once. A halt is written to the instrument row: order entry refuses
new orders and amendments while the engine, which reads it before each batch, stops
matching (the book keeps its resting orders and collects, as in an auction).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from exchange.errors import AppError
from exchange.models import InboxCommand, Instrument, Order

CHINA = ZoneInfo("Asia/Shanghai")
Action = InboxCommand.Action
State = Instrument.State


def instrument_code(*, class_code: str, hub_code: str, start: datetime, period_hours: int) -> str:
    local = start.astimezone(CHINA)
    day = local.strftime("%Y-%m-%d")
    return f"{class_code}.{hub_code}.{day}" if period_hours == 24 else f"{class_code}.{hub_code}.{day}T{local:%H}"


def periods(*, start_day: datetime, days: int, period_hours: int) -> list[tuple[datetime, datetime]]:
    """Delivery periods from China-time midnight of ``start_day`` for ``days`` days."""
    first = datetime(start_day.year, start_day.month, start_day.day, tzinfo=CHINA)
    count = days * 24 // period_hours
    return [(first + timedelta(hours=i * period_hours), first + timedelta(hours=(i + 1) * period_hours))
            for i in range(count)]


def instruments_list(*, now: datetime | None = None) -> int:
    """List every class × hub × period up to the horizon that is not listed yet; return how many."""
    from marketplace.models import ComputeClass, Hub

    now = now or timezone.now()
    today = now.astimezone(CHINA)
    gate = timedelta(minutes=settings.GATE_CLOSURE_MINUTES)
    auction_ends = now + timedelta(seconds=settings.OPENING_AUCTION_SECONDS)
    new = []
    for compute_class in ComputeClass.objects.all():
        for hub in Hub.objects.all():
            for start, end in periods(start_day=today, days=settings.INSTRUMENT_HORIZON_DAYS + 1,
                                      period_hours=compute_class.period_hours):
                if start - gate <= now:
                    continue
                new.append(Instrument(
                    code=instrument_code(class_code=compute_class.code, hub_code=hub.code, start=start,
                                         period_hours=compute_class.period_hours),
                    compute_class=compute_class, hub=hub,
                    delivery_start=start.astimezone(UTC), delivery_end=end.astimezone(UTC),
                    gate_closure_at=(start - gate).astimezone(UTC),
                    state=State.PRE_OPEN, auction_ends_at=auction_ends, band_bps=settings.PRICE_BAND_BPS,
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
