"""An alert's figures as the console shows them: a label in the reader's language for each
name the rules use, times in China time, lists as text."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

LABELS = {
    "at": _("Where"),
    "band_bps": _("Price band (bp)"),
    "beneficial_owner_id": _("Beneficial owner"),
    "buyer_id": _("Buyer"),
    "clearing_price": _("Clearing price"),
    "closing_price": _("Closing price"),
    "compute_class": _("Compute class"),
    "first_at": _("First order entered"),
    "gate_closure_at": _("Gate closure"),
    "held_by_buyers_scu_h": _("Held by all buyers (SCU·h)"),
    "held_scu_h": _("Held (SCU·h)"),
    "hhi": _("HHI"),
    "holders": _("Buyers holding capacity"),
    "hub": _("Hub"),
    "kind": _("Kind"),
    "last_price": _("Last price"),
    "least_behind_touch_bps": _("Least behind the touch (bp)"),
    "least_rise_bps": _("Least rise at a withdrawal (bp)"),
    "legs": _("Legs"),
    "level": _("Level"),
    "longest_life_s": _("Longest life (s)"),
    "max_share_pct": _("Threshold share (%)"),
    "minutes": _("Minutes watched"),
    "move_bps": _("Move (bp)"),
    "offered_again_scu_h": _("Offered again meanwhile (SCU·h)"),
    "opposite_scu_h": _("Opposite trades (SCU·h)"),
    "opposite_trades": _("Opposite trades"),
    "orders": _("Orders"),
    "orders_cancelled": _("Orders cancelled late"),
    "orders_entered": _("Orders entered late"),
    "owners": _("Owners"),
    "price": _("Price"),
    "price_before": _("Price before"),
    "price_now": _("Price now"),
    "price_start": _("Price at the window's start"),
    "price_without": _("Clearing price without them"),
    "prices": _("Prices"),
    "pulled_scu_h": _("Pulled (SCU·h)"),
    "qty": _("Quantities (SCU·h)"),
    "qty_scu_h": _("Quantity (SCU·h)"),
    "rings": _("Rings"),
    "rise_bps": _("Rise (bp)"),
    "seller_id": _("Seller"),
    "sellers": _("Sellers"),
    "share_pct": _("Share (%)"),
    "side": _("Side"),
    "sold_scu_h": _("Sold (SCU·h)"),
    "span_s": _("Span (s)"),
    "threshold": _("Threshold"),
    "threshold_bps": _("Threshold (bp)"),
    "top": _("Largest sellers"),
    "trades": _("Trades"),
    "volume_scu_h": _("Volume (SCU·h)"),
    "window_s": _("Window (s)"),
    "withdrawn_scu_h": _("Withdrawn, net (SCU·h)"),
}

# Values that are words, not figures.
VALUES = {
    ("at", "gate_closure"): _("before gate closure"),
    ("at", "auction"): _("before an auction uncross"),
    ("kind", "volatility"): _("volatility interruption"),
    ("kind", "resumption"): _("resumption"),
    ("level", "high"): _("highly concentrated"),
    ("level", "moderate"): _("moderately concentrated"),
    ("side", "buy"): _("buy"),
    ("side", "sell"): _("sell"),
}


def _seller(item: dict) -> str:
    return _("owner #%(owner)s: %(share)s %% (%(sold)s SCU·h)") % {
        "owner": item.get("beneficial_owner_id"), "share": item.get("share_pct"), "sold": item.get("sold_scu_h")}


def _when(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def figure_rows(figures: dict) -> list[tuple[str, str]]:
    """(label, value) rows; a name no label is known for is shown as it is."""
    out = []
    for name, value in figures.items():
        if name == "top" and isinstance(value, list):
            value = "; ".join(_seller(item) for item in value if isinstance(item, dict))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            value = "; ".join(", ".join(f"{k} {v}" for k, v in item.items()) for item in value)
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif name.endswith("_at") and isinstance(value, str):
            value = _when(value)
        elif isinstance(value, str) and (name, value) in VALUES:
            value = VALUES[(name, value)]
        out.append((str(LABELS.get(name, name.replace("_", " "))), str(value)))
    return out
