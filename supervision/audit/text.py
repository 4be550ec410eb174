"""How a record reads to a person (the console and the CSV's summary column), and the CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from functools import lru_cache
from datetime import timezone as dt_timezone

from django.utils import translation
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


# What each kind of record says, filled in from its details.
TEMPLATES = {
    "order": gettext_lazy("%(side)s %(type)s %(qty)s SCU·h at %(price)s (%(tif)s); now %(status)s, %(filled)s filled"),
    "cancel": gettext_lazy("Cancel order %(order)s"),
    "auction": gettext_lazy("Call auction started (a halt or a resumption)"),
    "uncross": gettext_lazy("The call auction uncrosses"),
    "close": gettext_lazy("Gate closure: every open order cancelled"),
    "expire": gettext_lazy("Due good-till-date orders expire"),
    "trade": gettext_lazy("%(qty)s SCU·h at %(price)s (aggressor: %(aggressor)s; orders %(buy_order)s and "
                          "%(sell_order)s)"),
    "supervision": "%(action)s: %(reason)s",
    "delivery_started": gettext_lazy("Delivery of allocation %(allocation)s started"),
    "delivery_answered": gettext_lazy("Allocation %(allocation)s: %(state)s"),
    "metering": gettext_lazy("%(device_hours)s device-hours metered for allocation %(allocation)s"),
    "dispute_opened": gettext_lazy("Dispute %(dispute)s opened on allocation %(allocation)s: %(reason)s"),
    "dispute_resolved": gettext_lazy("Dispute %(dispute)s resolved: %(state)s"),
    "settlement": gettext_lazy("Allocation %(allocation)s settled: %(delivered_scu_h)s of %(scu_h)s SCU·h delivered, "
                               "%(paid)s paid, %(refund)s refunded"),
    "payout": gettext_lazy("%(amount)s paid out for allocation %(allocation)s"),
    # Amendments, in parts.
    "amend": gettext_lazy("Amend order %(order)s: %(changes)s"),
    "amend_price": gettext_lazy("price %(price)s"),
    "amend_qty": gettext_lazy("quantity %(qty)s"),
    "market": gettext_lazy("market"),
}


@lru_cache(maxsize=8)
def _templates(language: str) -> dict[str, str]:
    """The templates in one language, translated once (an export describes every row)."""
    with translation.override(language):
        return {kind: str(template) for kind, template in TEMPLATES.items()}


def describe(row: AuditRow, templates: dict[str, str] | None = None) -> str:
    templates = templates or _templates(translation.get_language() or "en")
    d, kind = row.detail, row.kind
    if kind == "order":
        text = templates["order"] % {**d, "price": d["price"] or templates["market"]}
        return text + (f" ({d['reason']})" if d.get("reason") else "")
    if kind == "amend":
        parts = [templates["amend_price"] % d] if d["price"] else []
        parts += [templates["amend_qty"] % d] if d["qty"] else []
        return templates["amend"] % {"order": d["order"], "changes": ", ".join(parts)}
    return templates[kind] % d


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
        templates = _templates(language)
        for rows in audit_rows(filters=filters):
            yield "".join(writer.writerow([
                utc_text(row.at),
                row.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"), row.kind,
                row.organisation_id or "", row.organisation or "", row.counterparty_id or "", row.counterparty or "",
                row.instrument or "", row.user or "", describe(row, templates),
                row.detail_text,
            ]) for row in rows).encode()
