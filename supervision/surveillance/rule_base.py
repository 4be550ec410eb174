"""The shape of a rule: hooks called in inbox order (a rule defines those it needs)."""

from __future__ import annotations

from supervision.surveillance.book import InstrumentBook, Resting
from supervision.surveillance.context import Context
from supervision.surveillance.feed import Command, Trade

HOOKS = ("on_new", "on_trade", "on_cancel", "on_amend", "on_uncross", "on_auction", "on_close", "on_pass_end")


class Rule:
    code = ""

    def on_new(self, ctx: Context, p: dict, command: Command, order: Resting | None) -> None:
        """A new order, before its trades (``order``: as it came to rest in the copy, if a limit order)."""

    def on_trade(self, ctx: Context, p: dict, trade: Trade) -> None:
        """A trade, after the context and the book copy recorded it."""

    def on_cancel(self, ctx: Context, p: dict, command: Command, order: Resting | None) -> None:
        """A cancel by its owner (``order``: what was resting, None if unknown)."""

    def on_amend(self, ctx: Context, p: dict, command: Command, order: Resting | None, given_up: int) -> None:
        """An amendment (``given_up``: quantity cut)."""

    def on_uncross(self, ctx: Context, p: dict, command: Command, book: InstrumentBook) -> None:
        """A call auction uncrossing, before its trades are applied to ``book``."""

    def on_auction(self, ctx: Context, p: dict, command: Command) -> None:
        """A call auction started by command (a halt, a resumption, the regulator)."""

    def on_close(self, ctx: Context, p: dict, command: Command) -> None:
        """Gate closure processed."""

    def on_pass_end(self, ctx: Context, p: dict, now: float) -> None:
        """Once per pass (not while warming up): rules that read the database's state."""

    def forget(self, instrument_id: int) -> None:
        """The instrument closed: drop what is kept about it (called whether the rule runs or not)."""

    @classmethod
    def hooks(cls) -> set[str]:
        return {name for name in HOOKS if getattr(cls, name) is not getattr(Rule, name)}
