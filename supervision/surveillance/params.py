"""The surveillance rules the regulator can see and tune: codes, titles, parameters with
their defaults and bounds, and the ``Rule`` rows that hold the regulator's values."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from exchange.errors import AppError


@dataclass(frozen=True)
class Param:
    default: int
    low: int
    high: int
    help: str


@dataclass(frozen=True)
class RuleSpec:
    code: str
    title: str
    description: str
    severity: str
    params: dict[str, Param]


def _p(default, low, high, help_text):
    return Param(default, low, high, help_text)


MINUTES = 24 * 60
COOLDOWN = _p(600, 0, 7 * 86400, _("Seconds after an alert's last event during which further events join it "
                                    "instead of raising another alert (while it is open)."))

SPECS: dict[str, RuleSpec] = {spec.code: spec for spec in (
    RuleSpec("wash_same_owner", _("Wash trades: one beneficial owner on both sides"),
             _("A trade whose buyer and seller belong to one beneficial owner."), "high",
             {"min_qty": _p(1, 1, 10**9, _("Smallest trade (SCU·h) that counts.")), "cooldown_s": COOLDOWN}),
    RuleSpec("wash_circular", _("Wash trades: circular trading"),
             _("Capacity passed round a ring of owners (A→B→A or A→B→C→A) in one instrument within a window, "
               "in similar quantities."), "high",
             {"window_s": _p(600, 1, 86400, _("Seconds within which the ring closes.")),
              "max_legs": _p(3, 2, 3, _("Longest ring, in trades (2 or 3).")),
              "qty_tolerance_pct": _p(20, 0, 100, _("How far (percent) the quantities of a ring's trades may differ.")),
              "min_qty": _p(1, 1, 10**9, _("Smallest trade (SCU·h) that counts.")), "cooldown_s": COOLDOWN}),
    RuleSpec("spoofing", _("Spoofing and layering"),
             _("Large orders away from the touch cancelled within seconds, repeatedly, while the same owner "
               "trades on the other side."), "high",
             {"large_qty": _p(50, 1, 10**9, _("Smallest order (SCU·h) that counts as large.")),
              "min_away_bps": _p(20, 0, 10000, _("How far behind the touch on entry (basis points) the order was.")),
              "max_lifetime_s": _p(10, 1, 3600, _("Cancelled within this many seconds of entry.")),
              "min_count": _p(3, 1, 1000, _("Such cancelled orders on one side within the window.")),
              "window_s": _p(300, 1, 86400, _("Window (seconds) for counting them.")),
              "trade_grace_s": _p(10, 0, 3600, _("An opposite trade counts if made while one of those orders "
                                                 "stood, or within this many seconds of its entry or cancel."))
              , "cooldown_s": COOLDOWN}),
    RuleSpec("marking_close", _("Marking the close"),
             _("Trading in the minutes before gate closure that moves the closing price, mostly by one owner; "
               "orders entered or cancelled in the minutes before an auction uncross that move its price."),
             "medium",
             {"minutes": _p(5, 1, 120, _("Minutes before gate closure or the uncross that are watched.")),
              "min_move_bps": _p(200, 1, 10000, _("Move of the last price over those minutes (basis points).")),
              "min_share_pct": _p(50, 1, 100, _("The owner's share of the aggressive volume in the move's "
                                                "direction (percent).")),
              "auction_min_move_bps": _p(100, 1, 10000, _("How far (basis points) the owner's late orders and "
                                                          "cancels moved the auction's clearing price."))
              , "cooldown_s": COOLDOWN}),
    RuleSpec("hoarding", _("Hoarding"),
             _("One buyer (by beneficial owner) holding more than a set share of an instrument's sold capacity."),
             "medium",
             {"max_share_pct": _p(40, 1, 100, _("Share of the capacity held by buyers (percent).")),
              "min_sold_scu_h": _p(100, 1, 10**12, _("Only instruments with at least this much sold (SCU·h).")),
              "min_holders": _p(3, 1, 1000, _("Only instruments where at least this many buyers hold capacity "
                                              "(with two, one of them always holds half).")),
              "interval_s": _p(10, 1, 3600, _("Seconds between two checks of one instrument.")),
              "cooldown_s": _p(86400, 0, 30 * 86400, COOLDOWN.help)}),
    RuleSpec("withholding", _("Withholding"),
             _("A provider withdrawing offered capacity (cancelling or cutting asks) while the price rises."),
             "medium",
             {"min_qty": _p(100, 1, 10**9, _("SCU·h withdrawn within the window.")),
              "window_s": _p(600, 1, 86400, _("Window (seconds).")),
              "min_rise_bps": _p(200, 1, 10000, _("Rise of the last price over the window (basis points).")),
              "cooldown_s": COOLDOWN}),
    RuleSpec("concentration", _("Concentration of sold capacity"),
             _("Herfindahl–Hirschman index of sold capacity per compute class and hub, by seller's beneficial "
               "owner, over instruments not yet delivered."), "medium",
             {"moderate_hhi": _p(1800, 1, 10000, _("Moderately concentrated above this index.")),
              "high_hhi": _p(2500, 1, 10000, _("Highly concentrated above this index.")),
              "min_sold_scu_h": _p(100, 1, 10**12, _("Only classes and hubs with at least this much sold (SCU·h).")),
              "interval_s": _p(60, 5, 86400, _("Seconds between two computations.")),
              "cooldown_s": _p(86400, 0, 30 * 86400, COOLDOWN.help)}),
    RuleSpec("price_move", _("Price moves beyond the band"),
             _("The last price moved further than the instrument's price band within a window (information)."),
             "info",
             {"window_s": _p(900, 1, 86400, _("Window (seconds).")),
              "min_move_bps": _p(0, 0, 10000, _("Move (basis points) that counts; 0: the instrument's band.")),
              "cooldown_s": COOLDOWN}),
    RuleSpec("volatility_auction", _("Volatility auctions"),
             _("A call auction after continuous trading (a volatility interruption, or a resumption), with its "
               "clearing price against the reference (information)."), "info",
             {"cooldown_s": _p(0, 0, 86400, COOLDOWN.help)}),
)}


def effective(spec: RuleSpec, stored: dict) -> dict[str, int]:
    """The rule's parameters: the regulator's values where set (and still valid), else defaults."""
    out = {}
    for name, param in spec.params.items():
        value = stored.get(name)
        valid = isinstance(value, int) and not isinstance(value, bool) and param.low <= value <= param.high
        out[name] = value if valid else param.default
    return out


def parameters_check(spec: RuleSpec, values) -> dict[str, int]:
    """Validate the regulator's new values (whole numbers within bounds); AppError otherwise."""
    if not isinstance(values, dict):
        raise AppError("invalid", "parameters must be an object of whole numbers.",
                       fields={"parameters": "An object, e.g. {\"window_s\": 300}."})
    fields = {}
    for name, value in values.items():
        param = spec.params.get(name)
        if param is None:
            fields[str(name)[:60]] = f"Unknown parameter; this rule has {', '.join(spec.params)}."
        elif isinstance(value, bool) or not isinstance(value, int):
            fields[name] = "A whole number."
        elif not param.low <= value <= param.high:
            fields[name] = f"Between {param.low} and {param.high}."
    if fields:
        raise AppError("invalid", "The parameters are not valid.", fields=fields)
    return dict(values)


def rules_ensure() -> None:
    """A ``Rule`` row for every rule in code (new rules appear enabled, with their defaults)."""
    from supervision.models import Rule

    Rule.objects.bulk_create([Rule(code=code) for code in SPECS], ignore_conflicts=True)


def parameters_all() -> dict[str, dict | None]:
    """Every rule's effective parameters, None for a disabled rule (the runner reads this each pass)."""
    from supervision.models import Rule

    rows = {code: (enabled, stored) for code, enabled, stored in Rule.objects.values_list("code", "enabled", "parameters")}
    out = {}
    for code, spec in SPECS.items():
        enabled, stored = rows.get(code, (True, {}))
        out[code] = effective(spec, stored or {}) if enabled else None
    return out
