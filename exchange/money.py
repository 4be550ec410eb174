"""Money at the edges: CNY as Decimal with two places; in the store, integer fen."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

FEN = Decimal("0.01")


def fen_from_cny(value) -> int:
    """``"12.34"`` → 1234. Refuses floats (inexact) and more than two decimal places."""
    if isinstance(value, float):
        raise ValueError("send amounts as strings or integers, not floating point numbers")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a number")
    if amount != amount.quantize(FEN):
        raise ValueError(f"{value} has more than two decimal places (the tick is 0.01 CNY)")
    return int(amount * 100)


def cny(fen: int | None) -> str | None:
    """1234 → ``"12.34"`` (a string, so JSON never turns it into a float)."""
    if fen is None:
        return None
    if type(fen) is int:  # integer arithmetic: the engine formats several amounts per trade
        whole, cents = divmod(abs(fen), 100)
        return f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"
    return str((Decimal(fen) / 100).quantize(FEN))


def fee_fen(notional_fen: int, bps: int) -> int:
    """A fee in fen, rounded half up (away from zero). Never more than the per-lot ceiling the hold assumed."""
    magnitude = (abs(notional_fen) * bps + 5000) // 10000
    return -magnitude if notional_fen < 0 else magnitude
