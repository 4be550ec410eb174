"""Delivery periods: counted from 00:00 China time (no daylight saving), ``period_hours``
long — or, in demo mode, a few minutes for the demo class (``class_period``)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.conf import settings

CHINA = ZoneInfo("Asia/Shanghai")
# The compute class that seed_demo adds in demo mode. Its row says period_hours=1 (the
# catalogue's rule for every class); in demo mode it trades DEMO_PERIOD_MINUTES instead.
DEMO_CLASS_CODE = "DEMO"


def is_demo_class(compute_class) -> bool:
    """The demo class, while demo mode is on (outside it the demo class is not traded)."""
    return settings.DEMO_MODE and compute_class.code == DEMO_CLASS_CODE


def class_period(compute_class) -> timedelta:
    """How long one delivery period of ``compute_class`` is."""
    if is_demo_class(compute_class):
        return timedelta(minutes=settings.DEMO_PERIOD_MINUTES)
    return timedelta(hours=compute_class.period_hours)


def period_label(period: timedelta) -> str:
    """``24 h``, ``6 h``, ``5 min``: for messages."""
    minutes = int(period.total_seconds()) // 60
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def china_midnight(day: date) -> datetime:
    """00:00 China time of ``day``, as aware UTC."""
    return datetime.combine(day, time(0), tzinfo=CHINA).astimezone(dt_timezone.utc)


def china_today(now: datetime) -> date:
    return now.astimezone(CHINA).date()


def _since_midnight(moment: datetime) -> tuple[datetime, timedelta]:
    local = moment.astimezone(CHINA)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight, local - midnight


def is_boundary(moment: datetime, period: timedelta) -> bool:
    """Whether a period of this length starts at ``moment`` (periods divide the day)."""
    return _since_midnight(moment)[1] % period == timedelta(0)


def period_containing(moment: datetime, period: timedelta) -> datetime:
    """Start (aware UTC) of the delivery period that contains ``moment``."""
    midnight, elapsed = _since_midnight(moment)
    return (midnight + elapsed // period * period).astimezone(dt_timezone.utc)


def period_starts(start: datetime, end: datetime, period: timedelta) -> list[datetime]:
    """Starts of the periods that tile ``[start, end)``; both ends must be boundaries."""
    starts, moment = [], start.astimezone(dt_timezone.utc)
    while moment < end:
        starts.append(moment)
        moment += period
    return starts
