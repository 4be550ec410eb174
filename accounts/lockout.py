"""Sign-in lockout: too many wrong passwords for one account, or from one address, within
``SIGN_IN_LOCKOUT_SECONDS`` lock further attempts until the window has passed.

Counts live in the cache (Redis in production, shared by every web process). A window
starts with the first failure and is not extended by later ones, so a locked person knows
when to try again. The per-address limit (4× the per-account one) stops one client trying
many accounts; the per-account one stops many clients trying one account.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache

ADDRESS_FACTOR = 4


def _keys(email: str, address: str) -> list[tuple[str, int]]:
    limit = settings.SIGN_IN_MAX_FAILURES
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    keys = [(f"signin:acct:{digest}", limit)] if email else []
    if address:
        keys.append((f"signin:addr:{address}", limit * ADDRESS_FACTOR))
    return keys


def client_address(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client writes unless a proxy we trust sets it.
    return (request.META.get("REMOTE_ADDR") or "") if request is not None else ""


def _window(key: str) -> tuple[int, float | None]:
    """(failures so far, when the window started) of one count."""
    found = cache.get_many([f"{key}:n", f"{key}:since"])
    return found.get(f"{key}:n", 0), found.get(f"{key}:since")


def locked_for(*, email: str, address: str) -> int:
    """Seconds until sign-in is open again for this account and address (0: open)."""
    now = time.time()
    wait = 0.0
    for key, limit in _keys(email, address):
        count, since = _window(key)
        if count >= limit and since is not None:
            wait = max(wait, since + settings.SIGN_IN_LOCKOUT_SECONDS - now)
    return int(wait) + 1 if wait > 0 else 0


def failed(*, email: str, address: str) -> None:
    # add() opens a window only where none is running (so later failures do not extend it),
    # and incr() is atomic in the shared cache: failures sent in parallel each count, where
    # reading the count and writing it back let a burst of guesses past the limit.
    window = settings.SIGN_IN_LOCKOUT_SECONDS
    for key, _ in _keys(email, address):
        cache.add(f"{key}:since", time.time(), timeout=window)
        cache.add(f"{key}:n", 0, timeout=window)
        try:
            cache.incr(f"{key}:n")
        except ValueError:  # the window ended between the two calls: this failure opens the next
            cache.set(f"{key}:since", time.time(), timeout=window)
            cache.set(f"{key}:n", 1, timeout=window)


def failures(*, email: str) -> int:
    """Wrong passwords counted for this account in its current window."""
    return _window(_keys(email, "")[0][0])[0]


def succeeded(*, email: str) -> None:
    """The right password before the lock: the account's count starts again (the address's does not)."""
    for key, _ in _keys(email.strip().lower(), ""):
        cache.delete_many([f"{key}:n", f"{key}:since"])
