"""Rate limits of the order paths that DRF's throttles do not see: the fast ASGI route
(``exchange/fastpath.py``) and WebSocket commands (``exchange/consumers.py``).

Each API token (or, for a signed-in browser socket, each person) has a budget of
``THROTTLE_ORDERS`` orders, e.g. ``6000/min``: a token bucket that holds at most that many
and refills at that rate. An order costs one, a batch one per order in it, a WebSocket
cancel or amend one. Over budget the request is refused whole with 429 ``throttled`` and
``Retry-After`` (WebSocket: an error reply with code ``throttled`` whose detail says when).

The buckets live in each web process's memory, not in Redis: a shared counter would cost a
round trip per order on a path whose whole budget is about 80 µs of CPU per order, and the
group commit exists to avoid exactly that. So the limit holds per web process; with N
processes behind one port a token can place up to N × the rate. A process only ever sees the
tokens whose connections land on it, so the table stays small; idle buckets are dropped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings

from exchange.errors import AppError
from exchange.gateway import MAX_BATCH

UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
MAX_KEYS = 100_000


def parse_rate(rate: str) -> tuple[int, float]:
    """``"6000/min"`` → (6000, 60.0): how many per how many seconds."""
    try:
        count, _, unit = rate.strip().partition("/")
        seconds = UNITS[unit.strip().lower()]
        number = int(count)
    except (KeyError, ValueError):
        raise ValueError(f"A rate is written like 6000/min, not {rate!r}.") from None
    if number < 1:
        raise ValueError(f"A rate needs at least 1 per period, not {rate!r}.")
    return number, float(seconds)


class Throttled(AppError):
    def __init__(self, wait: float):
        self.retry_after = max(1, math.ceil(wait))
        super().__init__("throttled", f"Too many orders; try again in {self.retry_after} s.", status_code=429,
                         headers={"Retry-After": str(self.retry_after)})


@dataclass(slots=True)
class _Bucket:
    level: float
    at: float


class TokenBuckets:
    def __init__(self, rate: str, clock=time.monotonic):
        self.capacity, period = parse_rate(rate)
        self.per_second = self.capacity / period
        self._clock = clock
        self._buckets: dict[object, _Bucket] = {}

    def take(self, key, cost: int = 1) -> None:
        """Spend ``cost`` from ``key``'s bucket, or raise :class:`Throttled` and spend nothing."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(level=float(self.capacity), at=now)
        else:
            bucket.level = min(float(self.capacity), bucket.level + (now - bucket.at) * self.per_second)
            bucket.at = now
        if cost > bucket.level:
            # A batch larger than the whole budget waits for a full bucket, then is still too large:
            # tell it when the bucket is full rather than a time that never comes.
            raise Throttled((min(cost, self.capacity) - bucket.level) / self.per_second)
        bucket.level -= cost

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (their owners have been idle); they would start full anyway."""
        self._buckets = {key: bucket for key, bucket in self._buckets.items()
                         if bucket.level + (now - bucket.at) * self.per_second < self.capacity}


_orders: TokenBuckets | None = None
_orders_rate: str | None = None


def order_buckets() -> TokenBuckets:
    """This process's order budget, made anew when ``THROTTLE_ORDERS`` changes (tests change it)."""
    global _orders, _orders_rate
    if _orders is None or _orders_rate != settings.THROTTLE_ORDERS:
        _orders, _orders_rate = TokenBuckets(settings.THROTTLE_ORDERS), settings.THROTTLE_ORDERS
    return _orders


def actor_key(actor) -> tuple[str, int]:
    return ("token", actor.token.id) if actor.token is not None else ("user", actor.user.id)


def take_orders(actor, data=None, *, batch: bool = False) -> None:
    """Spend one order (or one per order of a batch body) from ``actor``'s budget."""
    cost = 1
    if batch:
        items = data.get("orders") if isinstance(data, dict) else None
        # A batch past MAX_BATCH is refused whole as invalid (400) after this: it costs no more
        # than the largest batch that could be placed.
        cost = min(max(1, len(items)), MAX_BATCH) if isinstance(items, list) else 1
    order_buckets().take(actor_key(actor), cost)
