"""Replay a day's commands from CSV and print the trades (or the final book).

Regulators and auditors use it to show that fills are reproducible from the command log:
the same file always yields the same trades, with either book.

Input header: ``action,order_id,owner,side,price,qty,tif``; action ``limit``, ``market``
or ``cancel``; side ``buy``/``sell``; tif ``GTC``, ``IOC``, ``FOK`` or ``POST_ONLY`` (a
GTC post-only order); price in integer ticks, empty for market and cancel. A cancel
needs only its order id (other fields may be empty); a market order takes tif IOC
(or empty) or FOK.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from typing import TextIO

import numpy as np

from .book import Book
from .reference import ReferenceBook
from .types import COMMAND_DTYPE, Action, EventType, Side, Stp, Tif

HEADER = ["action", "order_id", "owner", "side", "price", "qty", "tif"]
TRADES_HEADER = ["seq", "taker_order_id", "maker_order_id", "price", "qty"]
BOOK_HEADER = ["side", "price", "order_id", "qty"]
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_LIMIT_TIFS = {"GTC": (Tif.GTC, 0), "IOC": (Tif.IOC, 0), "FOK": (Tif.FOK, 0), "POST_ONLY": (Tif.GTC, 1)}
_MARKET_TIFS = {"": Tif.IOC, "IOC": Tif.IOC, "FOK": Tif.FOK}


class ReplayError(ValueError):
    """A malformed input file; the message names the line."""


def parse_commands(text: TextIO, *, protect_ticks: int) -> np.ndarray:
    """Parse the whole CSV into COMMAND_DTYPE rows, or raise ReplayError at the first bad line."""
    reader = csv.reader(text)
    header = next(reader, None)
    if header != HEADER:
        raise ReplayError(f"line 1: header must be {','.join(HEADER)}")
    rows = []
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ReplayError(f"line {reader.line_num}: {exc}") from None
        try:
            rows.append(_parse_row(fields, protect_ticks=protect_ticks))
        except ValueError as exc:
            raise ReplayError(f"line {reader.line_num}: {exc}") from None
    out = np.zeros(len(rows), dtype=COMMAND_DTYPE)
    for i, row in enumerate(rows):
        for name, value in row.items():
            out[name][i] = value
    return out


def _parse_row(fields: list[str], *, protect_ticks: int) -> dict[str, int]:
    if len(fields) != len(HEADER):
        raise ValueError(f"expected {len(HEADER)} fields, got {len(fields)}")
    action, order_id, owner, side, price, qty, tif = (f.strip() for f in fields)
    row = {"order_id": _int(order_id, "order_id", minimum=1)}
    if action == "cancel":
        if price:
            raise ValueError("price must be empty for cancel")
        row["action"] = Action.CANCEL
        return row
    if action not in ("limit", "market"):
        raise ValueError(f"action must be limit, market or cancel, not {action!r}")
    if side not in _SIDES:
        raise ValueError(f"side must be buy or sell, not {side!r}")
    row.update(owner=_int(owner, "owner"), side=_SIDES[side], qty=_int(qty, "qty", minimum=1))
    if action == "market":
        if price:
            raise ValueError("price must be empty for market")
        if tif not in _MARKET_TIFS:
            raise ValueError(f"tif of a market order must be IOC or FOK, not {tif!r}")
        row.update(action=Action.MARKET, tif=_MARKET_TIFS[tif], protect_ticks=protect_ticks)
        return row
    if tif not in _LIMIT_TIFS:
        raise ValueError(f"tif must be GTC, IOC, FOK or POST_ONLY, not {tif!r}")
    row["tif"], row["post_only"] = _LIMIT_TIFS[tif]
    row.update(action=Action.LIMIT, price=_int(price, "price", minimum=1))
    return row


def _int(text: str, name: str, *, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {text!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")
    if abs(value) >= 1 << 63:
        raise ValueError(f"{name} is out of range")
    return value


def replay(commands: np.ndarray, *, reference: bool, stp_mode: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``commands`` through a fresh book in one batch; return (events, resting orders)."""
    book = (ReferenceBook if reference else Book)(stp_mode=stp_mode)
    events = book.process(commands)
    return events, book.orders()


def format_trades(events: np.ndarray) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRADES_HEADER)
    trades = events[events["type"] == EventType.TRADE]
    for seq, t in enumerate(trades, start=1):
        writer.writerow([seq, int(t["taker_id"]), int(t["maker_id"]), int(t["price"]), int(t["qty"])])
    return out.getvalue()


def format_book(orders: np.ndarray) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BOOK_HEADER)
    for o in orders:
        writer.writerow(["buy" if o["side"] == Side.BUY else "sell", int(o["price"]), int(o["order_id"]), int(o["qty"])])
    return out.getvalue()


def main(argv: Sequence[str] | None = None, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(prog="python -m matching", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("replay", help="replay a CSV of commands; print trades as CSV")
    p.add_argument("path", help="commands CSV (action,order_id,owner,side,price,qty,tif)")
    p.add_argument("--reference", action="store_true", help="use the pure-Python reference book")
    p.add_argument("--book", action="store_true", help="print the final resting orders instead of trades")
    p.add_argument(
        "--protect-ticks",
        type=int,
        default=1 << 40,
        help="market order protection in ticks (default: effectively unlimited)",
    )
    p.add_argument(
        "--stp", choices=[s.name for s in Stp], default=Stp.EXPIRE_TAKER.name, help="self-trade prevention mode"
    )
    args = parser.parse_args(argv)
    try:
        with open(args.path, newline="", encoding="utf-8") as f:
            batch = parse_commands(f, protect_ticks=args.protect_ticks)
    except (OSError, UnicodeDecodeError, ReplayError) as exc:
        print(f"{args.path}: {exc}", file=stderr)
        return 2
    events, orders = replay(batch, reference=args.reference, stp_mode=Stp[args.stp])
    stdout.write(format_book(orders) if args.book else format_trades(events))
    return 0
