"""How a record reads to a person (the console and the CSV's summary column), and the CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import timezone as dt_timezone

from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from supervision.audit.trail import CHINA, AuditFilters, AuditRow, audit_rows

KIND_LABELS = {
    "order": gettext_lazy("Order"),
    "amend": gettext_lazy("Amendment"),
    "cancel": gettext_lazy("Cancel"),
    "auction": gettext_lazy("Call auction"),
    "uncross": gettext_lazy("Uncross"),
    "close": gettext_lazy("Gate closure"),
    "expire": gettext_lazy("Expiry"),
    "trade": gettext_lazy("Trade"),
    "supervision": gettext_lazy("Regulator action"),
    "delivery_started": gettext_lazy("Delivery started"),
    "delivery_answered": gettext_lazy("Delivery answered"),
    "metering": gettext_lazy("Metering"),
    "dispute_opened": gettext_lazy("Dispute opened"),
    "dispute_resolved": gettext_lazy("Dispute resolved"),
    "settlement": gettext_lazy("Settlement"),
    "payout": gettext_lazy("Payout"),
}


def describe(row: AuditRow) -> str:
    d = row.details
    kind = row.kind
    if kind == "order":
        text = _("%(side)s %(type)s %(qty)s SCU·h at %(price)s (%(tif)s); now %(status)s, %(filled)s filled") % {
            **d, "price": d["price"] or _("market")}
        return text + (f" ({d['reason']})" if d.get("reason") else "")
    if kind == "amend":
        parts = [_("price %(price)s") % d] if d["price"] else []
        parts += [_("quantity %(qty)s") % d] if d["qty"] else []
        return _("Amend order %(order)s: %(changes)s") % {"order": d["order"], "changes": ", ".join(parts)}
    if kind == "cancel":
        return _("Cancel order %(order)s") % d
    if kind == "auction":
        return _("Call auction started (a halt or a resumption)")
    if kind == "uncross":
        return _("The call auction uncrosses")
    if kind == "close":
        return _("Gate closure: every open order cancelled")
    if kind == "expire":
        return _("Due good-till-date orders expire")
    if kind == "trade":
        return _("%(qty)s SCU·h at %(price)s (aggressor: %(aggressor)s; orders %(buy_order)s and %(sell_order)s)") % d
    if kind == "supervision":
        return f"{d['action']}: {d['reason']}"
    if kind == "delivery_started":
        return _("Delivery of allocation %(allocation)s started") % d
    if kind == "delivery_answered":
        return _("Allocation %(allocation)s: %(state)s") % d
    if kind == "metering":
        return _("%(device_hours)s device-hours metered for allocation %(allocation)s") % d
    if kind == "dispute_opened":
        return _("Dispute %(dispute)s opened on allocation %(allocation)s: %(reason)s") % d
    if kind == "dispute_resolved":
        return _("Dispute %(dispute)s resolved: %(state)s") % d
    if kind == "settlement":
        return _("Allocation %(allocation)s settled: %(delivered_scu_h)s of %(scu_h)s SCU·h delivered, "
                 "%(paid)s paid, %(refund)s refunded") % d
    if kind == "payout":
        return _("%(amount)s paid out for allocation %(allocation)s") % d
    return ""


CSV_HEADER = ["time_utc", "time_china", "kind", "organisation_id", "organisation", "counterparty_id", "counterparty",
              "instrument", "user", "summary", "details"]


class _Echo:
    def write(self, value):
        return value


def utc_text(moment) -> str:
    return moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def audit_csv_chunks(*, filters: AuditFilters, language: str) -> Iterator[bytes]:
    """The CSV of every selected record, newest first, a few thousand rows per piece."""
    writer = csv.writer(_Echo())
    with translation.override(language):
        yield ("\ufeff" + writer.writerow(CSV_HEADER)).encode()  # the mark tells spreadsheets it is UTF-8
        for rows in audit_rows(filters=filters):
            yield "".join(writer.writerow([
                utc_text(row.at),
                row.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"), row.kind,
                row.organisation_id or "", row.organisation or "", row.counterparty_id or "", row.counterparty or "",
                row.instrument or "", row.user or "", describe(row),
                json.dumps(row.details, ensure_ascii=False, separators=(",", ":"), default=str),
            ]) for row in rows).encode()
