"""Delivery periods: ``period_hours`` long, counted from 00:00 China time (no daylight saving)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def china_midnight(day: date) -> datetime:
    """00:00 China time of ``day``, as aware UTC."""
    return datetime.combine(day, time(0), tzinfo=CHINA).astimezone(dt_timezone.utc)


def china_today(now: datetime) -> date:
    return now.astimezone(CHINA).date()


def is_boundary(moment: datetime, period_hours: int) -> bool:
    local = moment.astimezone(CHINA)
    return local.minute == local.second == local.microsecond == 0 and local.hour % period_hours == 0


def period_containing(moment: datetime, period_hours: int) -> datetime:
    """Start (aware UTC) of the delivery period that contains ``moment``."""
    local = moment.astimezone(CHINA)
    start = local.replace(hour=local.hour - local.hour % period_hours, minute=0, second=0, microsecond=0)
    return start.astimezone(dt_timezone.utc)


def period_starts(start: datetime, end: datetime, period_hours: int) -> list[datetime]:
    """Starts of the periods that tile ``[start, end)``; both ends must be boundaries."""
    step = timedelta(hours=period_hours)
    starts, moment = [], start.astimezone(dt_timezone.utc)
    while moment < end:
        starts.append(moment)
        moment += step
    return starts
