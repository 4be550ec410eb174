"""What the background runners (the engine's shards, settlement's) share: one shard's advisory
lock, the ``--shard K/N`` argument, and pausing cyclic garbage collection during a batch.
Nothing here imports numba, so a settlement process does not load it."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

from django.db import connection


class ShardLock:
    """A runner that owns ``self.shard`` while it holds the advisory lock
    (``ADVISORY_LOCK_CLASS``, ``shard``) on its connection; a second runner for the same
    shard blocks in ``acquire_shard`` instead of writing."""

    ADVISORY_LOCK_CLASS: int
    shard: int

    def acquire_shard(self, *, wait: bool = True) -> bool:
        with connection.cursor() as cursor:
            if wait:
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", [self.ADVISORY_LOCK_CLASS, self.shard])
                return True
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [self.ADVISORY_LOCK_CLASS, self.shard])
            return cursor.fetchone()[0]

    def release_shard(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [self.ADVISORY_LOCK_CLASS, self.shard])


def shard_parse(text: str) -> tuple[int, int]:
    """``"K/N"`` → (K, N) with 0 <= K < N; ValueError otherwise."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        k, n = -1, 0
    if not 0 <= k < n:
        raise ValueError("--shard must be K/N with 0 <= K < N, e.g. 0/2")
    return k, n


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def cyclic_gc_paused():
    """No cyclic garbage collection while a batch runs (reference counting still frees).

    A batch makes some hundred thousand short-lived, acyclic objects; the collections they
    triggered walked the whole heap (every resting order, in the engine) several times per
    batch, about a tenth of the engine's time. Counted, so runners on several threads of one
    process (the tests) turn it back on only when the last batch ends.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()
