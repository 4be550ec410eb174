"""Reading alerts and rules for the console and the API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from accounts.models import Organisation
from exchange.money import cny
from exchange.models import Order, Trade
from supervision.models import Alert, Rule
from supervision.surveillance.figures import VALUES
from supervision.surveillance.params import SPECS, RuleSpec, effective, rules_ensure

EVIDENCE_ROWS = 200


def alert_list(*, state: str | None = None, rule: str | None = None, severity: str | None = None,
               organisation_id: int | None = None, instrument: str | None = None) -> QuerySet[Alert]:
    alerts = Alert.objects.select_related("rule", "instrument")
    if state:
        alerts = alerts.filter(state=state)
    if rule:
        alerts = alerts.filter(rule__code=rule)
    if severity:
        alerts = alerts.filter(severity=severity)
    if organisation_id:
        alerts = alerts.filter(organisation_ids__contains=[organisation_id])
    if instrument:
        alerts = alerts.filter(instrument__code=instrument)
    return alerts.order_by("-id")


def alert_get(*, alert_id: int) -> Alert | None:
    if not 0 < alert_id < 2**63:
        return None
    return Alert.objects.select_related("rule", "instrument").filter(pk=alert_id).first()


def organisation_names(alerts) -> dict[int, str]:
    """Names of every organisation the alerts name, in one query."""
    ids = {org for alert in alerts for org in alert.organisation_ids}
    return dict(Organisation.objects.filter(pk__in=ids).values_list("id", "name")) if ids else {}


@dataclass
class Evidence:
    orders: list[dict]
    trades: list[dict]


def evidence_rows(alert: Alert) -> Evidence:
    """The alert's orders and trades as they are now (at most ``EVIDENCE_ROWS`` of each)."""
    order_ids = alert.evidence.get("orders", [])[:EVIDENCE_ROWS]
    trade_ids = alert.evidence.get("trades", [])[:EVIDENCE_ROWS]
    orders = [
        {"id": o.id, "instrument": o.instrument.code, "organisation": o.organisation.name, "side": o.side,
         "type": o.type, "tif": o.tif, "price": cny(o.price_fen), "qty": o.qty, "filled": o.filled,
         "status": o.status, "created_at": o.created_at}
        for o in Order.objects.filter(pk__in=order_ids).select_related("instrument", "organisation").order_by("id")]
    trades = [
        {"id": t.id, "instrument": t.instrument.code, "seller": t.seller.name, "buyer": t.buyer.name,
         "price": cny(t.price_fen), "qty": t.qty, "aggressor": t.aggressor, "created_at": t.created_at}
        for t in Trade.objects.filter(pk__in=trade_ids).select_related("instrument", "buyer", "seller").order_by("id")]
    return Evidence(orders, trades)


def rule_rows() -> list[dict]:
    """Every rule with its title, whether it runs, and its parameters (value, default, bounds, help)."""
    rules_ensure()
    rows = {rule.code: rule for rule in Rule.objects.all()}
    return [rule_row(SPECS[code], rows[code]) for code in SPECS]


def rule_row(spec: RuleSpec, rule: Rule) -> dict:
    values = effective(spec, rule.parameters)
    return {"code": spec.code, "title": str(spec.title), "description": str(spec.description),
            "severity": spec.severity, "enabled": rule.enabled, "updated_at": rule.updated_at,
            "parameters": [{"name": name, "value": values[name], "default": p.default, "min": p.low, "max": p.high,
                            "help": str(p.help)} for name, p in spec.params.items()]}


def rule_title(code: str) -> str:
    spec = SPECS.get(code)
    return str(spec.title) if spec else code


def alert_summary(alert: Alert) -> str:
    """One line saying what crossed the rule's thresholds, in the reader's language."""
    f = alert.evidence.get("figures", {})
    code = alert.rule.code
    try:
        if code == "wash_same_owner":
            return _("%(trades)s trade(s), %(volume)s SCU·h, between organisations of one beneficial owner") % {
                "trades": f["trades"], "volume": f["volume_scu_h"]}
        if code == "wash_circular":
            return _("%(legs)s-leg ring of trades among %(owners)s owners within %(span)s s") % {
                "legs": f["legs"], "owners": len(set(f["owners"])), "span": f["span_s"]}
        if code == "spoofing":
            return _("%(orders)s large %(side)s orders (%(qty)s SCU·h) pulled within %(life)s s, at least "
                     "%(away)s bp behind the touch; %(opposite)s opposite trade(s)") % {
                "orders": f["orders"], "side": str(VALUES.get(("side", f["side"]), f["side"])), "qty": f["qty_scu_h"], "life": f["longest_life_s"],
                "away": f["least_behind_touch_bps"], "opposite": f["opposite_trades"]}
        if code == "marking_close" and f.get("at") == "auction":
            return _("Late orders moved the auction's clearing price %(move)s bp (%(without)s without them, "
                     "%(price)s with)") % {"move": f["move_bps"], "without": f["price_without"],
                                            "price": f["clearing_price"]}
        if code == "marking_close":
            return _("Closing price moved %(move)s bp in the last %(minutes)s minutes, %(share)s%% of the pushing "
                     "volume from one owner") % {"move": f["move_bps"], "minutes": f["minutes"], "share": f["share_pct"]}
        if code == "hoarding":
            return _("One buyer holds %(share)s%% (%(held)s of %(total)s SCU·h) of the capacity buyers hold") % {
                "share": f["share_pct"], "held": f["held_scu_h"], "total": f["held_by_buyers_scu_h"]}
        if code == "withholding":
            return _("%(qty)s SCU·h of offers withdrawn (net of those offered again) while the price rose "
                     "%(rise)s bp") % {
                "qty": f["withdrawn_scu_h"], "rise": f["rise_bps"]}
        if code == "concentration":
            return _("HHI %(hhi)s in %(cls)s · %(hub)s (%(sellers)s sellers of %(sold)s SCU·h)") % {
                "hhi": f["hhi"], "cls": f["compute_class"], "hub": f["hub"], "sellers": f["sellers"],
                "sold": f["sold_scu_h"]}
        if code == "price_move":
            return _("Price moved %(move)s bp (%(before)s → %(price)s) within %(window)s s; band %(band)s bp") % {
                "move": f["move_bps"], "before": f["price_before"], "price": f["price"], "window": f["window_s"],
                "band": f["band_bps"]}
        if code == "volatility_auction":
            return _("Call auction (%(kind)s) cleared at %(price)s, %(move)s bp from %(before)s") % {
                "kind": f["kind"], "price": f["clearing_price"], "move": f["move_bps"], "before": f["price_before"]}
    except (KeyError, TypeError):
        pass
    return rule_title(code)
