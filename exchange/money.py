"""Money at the edges: CNY as Decimal with two places; in the store, integer fen."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

FEN = Decimal("0.01")
# 10^15 fen (10 trillion CNY): any one amount a person can mean, with room for thousands
# of them in one bigint balance.
MAX_AMOUNT_FEN = 10**15
MAX_TEXT = 32


def fen_from_cny(value) -> int:
    """``"12.34"`` → 1234. Refuses floats (inexact), more than two decimal places, and
    amounts beyond ``MAX_AMOUNT_FEN`` (so no sum of a few of them overflows a bigint)."""
    if isinstance(value, float):
        raise ValueError("send amounts as strings or integers, not floating point numbers")
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError("send amounts as decimal strings, e.g. \"18.50\"")
    if isinstance(value, int) and abs(value) > MAX_AMOUNT_FEN // 100:
        raise ValueError("the amount is out of range")
    text = str(value).strip()
    # Decimal reads any length; a figure no amount needs is refused before the work.
    if len(text) > MAX_TEXT:
        raise ValueError(f"{text[:20]}… is too long for an amount")
    try:
        amount = Decimal(text)
        if not amount.is_finite():
            raise ValueError
        quantized = amount.quantize(FEN)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{text!r} is not an amount") from None
    if amount != quantized:
        raise ValueError(f"{text} has more than two decimal places (the tick is 0.01 CNY)")
    fen = int(quantized * 100)
    if abs(fen) > MAX_AMOUNT_FEN:
        raise ValueError("the amount is out of range")
    return fen


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
